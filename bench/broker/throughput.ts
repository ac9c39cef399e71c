import { setTimeout as sleep } from 'node:timers/promises';
import { KEEPALIVE_SECONDS, type BrokerUnderTest } from './broker-under-test.ts';
import { PAYLOAD } from './connect-cycle.ts';
import { openConnection, type ClientIdentity, type MqttConnection } from './mqtt-connection.ts';
import { nextPacketId, publishBatch, publishTemplate, type PublishTemplate } from './mqtt-wire.ts';
import { startPhaseMeter, type PhaseReading } from './phase-meter.ts';

/** What the QoS 1 phase measured. */
export interface ThroughputResult {
  readonly publishers: number;
  readonly window: number;
  /** PUBACKs received inside the timed window, per second. */
  readonly messagesPerSecond: number;
  readonly acknowledged: number;
  readonly reading: PhaseReading;
  readonly brokerCpuUsPerMessage: number;
  /** Load generator CPU over wall clock: near 1.0 means the load generator, not the broker, was the limit. */
  readonly loadCpuUtilisation: number;
  readonly brokerCpuUtilisation: number;
  /** Publishers whose connection closed during the phase (an ACL refusal closes it in fleetgate). */
  readonly disconnected: number;
  /** Messages sent but never acknowledged by the end (should be 0). */
  readonly unacknowledged: number;
}

/** Untimed first second: windows fill, JIT settles. */
const RAMP_MS = 1_000;
/** How long outstanding PUBACKs may take after the timed window. */
const DRAIN_TIMEOUT_MS = 10_000;

/** One publisher keeping `window` QoS 1 messages in flight on its own topic. */
export class WindowedPublisher {
  sent = 0;
  acked = 0;
  /** Acknowledgements counted inside the timed window. */
  counted = 0;
  counting = false;
  sending = true;
  private nextId = 1;
  private owed = 0;
  private readonly refillBatch: number;
  private readonly template: PublishTemplate;

  constructor(
    private readonly connection: MqttConnection,
    topic: string,
    private readonly window: number,
  ) {
    this.template = publishTemplate(topic, PAYLOAD, 1);
    this.refillBatch = Math.max(1, Math.floor(window / 4));
    connection.onPuback = () => {
      this.acked++;
      if (this.counting) this.counted++;
      if (!this.sending) return;
      // Refills go out in batches of a quarter window, once per event-loop turn: a broker that
      // sends each PUBACK in its own TLS record (mosquitto does) would otherwise cost the load
      // generator a write, a TLS record and a syscall per message, and make it the bottleneck.
      // At least three quarters of the window stay in flight, so the broker never waits for it.
      this.owed++;
      if (this.owed === this.refillBatch) setImmediate(this.flush);
    };
  }

  private readonly flush = (): void => {
    if (this.owed > 0 && this.sending && !this.connection.isClosed) this.send(this.owed);
    this.owed = 0;
  };

  start(): void {
    this.send(this.window);
  }

  get closed(): boolean {
    return this.connection.isClosed;
  }

  private send(count: number): void {
    this.connection.write(publishBatch(this.template, count, this.nextId));
    this.nextId = nextPacketId(this.nextId, count);
    this.sent += count;
  }
}

/**
 * QoS 1 throughput through the ACL: `publishers` devices each publish to `devices/<id>/t` (their
 * own namespace, allowed by both brokers' ACLs) as fast as the PUBACKs come back, with `window`
 * messages in flight each, for `seconds` after a one-second ramp. Counts the PUBACKs inside the
 * window.
 */
export async function measureThroughput(
  broker: BrokerUnderTest,
  devices: readonly ClientIdentity[],
  options: { readonly publishers: number; readonly window: number; readonly seconds: number },
): Promise<ThroughputResult> {
  const connections = await Promise.all(
    devices.slice(0, options.publishers).map(async (identity) => {
      const opened = await openConnection(broker.address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: 30_000, serverCheck: 'chain' });
      if (!opened.ok) throw new Error(`${broker.kind}: publisher ${identity.clientId} could not connect: ${opened.failure}`);
      return { identity, connection: opened.connection };
    }),
  );
  const publishers = connections.map(({ identity, connection }) => new WindowedPublisher(connection, `devices/${identity.clientId}/t`, options.window));
  for (const publisher of publishers) publisher.start();
  await sleep(RAMP_MS);
  const meter = await startPhaseMeter(broker.cpu ?? broker.daemon.pid);
  for (const publisher of publishers) publisher.counting = true;
  await sleep(options.seconds * 1000);
  for (const publisher of publishers) publisher.counting = false;
  const reading = await meter.stop();
  for (const publisher of publishers) publisher.sending = false;
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (performance.now() < deadline && publishers.some((publisher) => !publisher.closed && publisher.acked < publisher.sent)) await sleep(50);
  const acknowledged = publishers.reduce((sum, publisher) => sum + publisher.counted, 0);
  const result: ThroughputResult = {
    publishers: publishers.length,
    window: options.window,
    messagesPerSecond: acknowledged / (reading.wallMs / 1000),
    acknowledged,
    reading,
    brokerCpuUsPerMessage: (reading.brokerCpu.totalMs * 1000) / Math.max(1, acknowledged),
    loadCpuUtilisation: reading.loadCpuMs / reading.wallMs,
    brokerCpuUtilisation: reading.brokerCpu.totalMs / reading.wallMs,
    disconnected: publishers.filter((publisher) => publisher.closed).length,
    unacknowledged: publishers.reduce((sum, publisher) => sum + (publisher.sent - publisher.acked), 0),
  };
  await Promise.all(connections.map(({ connection }) => connection.disconnect()));
  return result;
}
