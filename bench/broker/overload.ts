import { setTimeout as sleep } from 'node:timers/promises';
import { readRssKiB } from '../proc-cpu.ts';
import { KEEPALIVE_SECONDS, type BrokerUnderTest } from './broker-under-test.ts';
import { connectCycle, PAYLOAD, type CycleOutcome } from './connect-cycle.ts';
import { countBy } from './count.ts';
import { openConnection, type ClientIdentity, type MqttConnection } from './mqtt-connection.ts';
import { publishBatch, publishTemplate, type PublishTemplate } from './mqtt-wire.ts';
import { startPhaseMeter, type PhaseReading } from './phase-meter.ts';
import { subscribeService } from './service-subscriber.ts';

/** What the overload test saw. */
export interface OverloadResult {
  readonly floodClients: number;
  readonly seconds: number;
  /** The QoS 1 capacity measured earlier in the same repetition; the flood offers twice this. */
  readonly capacityPerSecond: number;
  readonly offeredPerSecond: number;
  /** Messages the flooding sockets took (written without waiting), per second. */
  readonly writtenPerSecond: number;
  /**
   * Share of the offered messages not written because the socket was still full from earlier
   * ones: how much the broker slowed the flooding clients down (TCP backpressure).
   */
  readonly blockedShare: number;
  /** Messages the broker delivered to the subscriber during the flood, per second: what it accepted. */
  readonly deliveredPerSecond: number;
  /** Deliveries in the two seconds after the flood stopped (backlog drained). */
  readonly deliveredAfter: number;
  /** Flooding clients whose connection the broker closed, by reason. */
  readonly floodClientsDisconnected: Record<string, number>;
  readonly subscriberDisconnected: boolean;
  readonly brokerAlive: boolean;
  /** A fresh device's connect cycle right after the flood (TLS, CONNECT, CONNACK, QoS 1 PUBLISH, PUBACK). */
  readonly freshClient: CycleOutcome;
  readonly rssBeforeKiB: number;
  readonly rssPeakKiB: number;
  readonly reading: PhaseReading;
  readonly brokerCpuUtilisation: number;
  readonly loadCpuUtilisation: number;
}

/** The flood is paced in ticks of this length. */
const TICK_MS = 10;
/** Broker RSS and liveness are sampled this often during the flood. */
const SAMPLE_MS = 250;
/** Wait after the flood for the broker to deliver what it had taken in. */
const AFTER_MS = 2_000;
/** The topic level the flood publishes to under each device's namespace. */
const FLOOD_LEVEL = 'flood';

/**
 * One flooding client: QoS 0 PUBLISHes at `perSecond` on a fixed schedule. When the socket's
 * buffer is above its high-water mark the messages that fall due are not written (counted as
 * blocked) until it drains: the client never queues without bound, and the share it could not
 * write is how hard the broker pushed back.
 */
class Flooder {
  offered = 0;
  written = 0;
  blocked = 0;
  private waitingForDrain = false;
  private readonly template: PublishTemplate;

  constructor(
    readonly connection: MqttConnection,
    topic: string,
    private readonly perSecond: number,
  ) {
    this.template = publishTemplate(topic, PAYLOAD, 0);
  }

  tick(elapsedMs: number): void {
    const due = Math.floor((this.perSecond * elapsedMs) / 1000) - this.offered;
    if (due <= 0) return;
    this.offered += due;
    if (this.waitingForDrain || this.connection.isClosed) {
      this.blocked += due;
      return;
    }
    this.written += due;
    if (!this.connection.write(publishBatch(this.template, due, 0))) {
      this.waitingForDrain = true;
      this.connection.socket.once('drain', () => {
        this.waitingForDrain = false;
      });
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Overload: `floodClients` devices publish QoS 0 to their own namespace at twice the broker's
 * measured QoS 1 capacity in total, for `seconds`, while the backend service subscribes to all of
 * it. The broker must stay up and a fresh device must still get CONNACK (and a PUBACK) afterwards.
 * Reports what the broker accepted, how much it slowed the flooding clients and whom it cut off.
 */
export async function runOverload(
  broker: BrokerUnderTest,
  fleet: { readonly flooders: readonly ClientIdentity[]; readonly fresh: ClientIdentity; readonly service: ClientIdentity },
  options: { readonly capacityPerSecond: number; readonly seconds: number },
): Promise<OverloadResult> {
  const pid = broker.daemon.pid;
  const offeredPerSecond = 2 * options.capacityPerSecond;
  const subscriber = await subscribeService(broker, fleet.service, `devices/+/${FLOOD_LEVEL}`, 0);
  const flooders = await Promise.all(
    fleet.flooders.map(async (identity) => {
      const opened = await openConnection(broker.address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: 30_000, serverCheck: 'chain' });
      if (!opened.ok) throw new Error(`${broker.kind}: flooding client ${identity.clientId} could not connect: ${opened.failure}`);
      return new Flooder(opened.connection, `devices/${identity.clientId}/${FLOOD_LEVEL}`, offeredPerSecond / fleet.flooders.length);
    }),
  );
  const rssBeforeKiB = await readRssKiB(pid);
  let rssPeakKiB = rssBeforeKiB;
  let brokerAlive = true;
  const sampler = setInterval(() => {
    if (!processAlive(pid) || broker.daemon.exited()) {
      brokerAlive = false;
      return;
    }
    readRssKiB(pid).then(
      (rss) => {
        rssPeakKiB = Math.max(rssPeakKiB, rss);
      },
      () => {
        brokerAlive = false;
      },
    );
  }, SAMPLE_MS);

  const meter = await startPhaseMeter(broker.cpu ?? pid);
  const origin = performance.now();
  const end = origin + options.seconds * 1000;
  while (performance.now() < end) {
    const elapsed = performance.now() - origin;
    for (const flooder of flooders) flooder.tick(elapsed);
    await sleep(TICK_MS);
  }
  const deliveredDuring = subscriber.delivered();
  const reading = await meter.stop().catch(() => undefined);
  await sleep(AFTER_MS);
  clearInterval(sampler);
  const deliveredAfter = subscriber.delivered() - deliveredDuring;
  brokerAlive &&= processAlive(pid) && !broker.daemon.exited();

  const floodClientsDisconnected = countBy(flooders.map((flooder) => (flooder.connection.isClosed ? (flooder.connection.error ?? 'closed by the broker') : undefined)));
  const subscriberDisconnected = subscriber.connection.isClosed;
  for (const flooder of flooders) flooder.connection.socket.destroy();
  const freshClient = brokerAlive ? await connectCycle(broker.address, fleet.fresh) : { failure: 'broker not running', latencyMs: Number.NaN, protocol: undefined };
  brokerAlive &&= processAlive(pid);
  subscriber.connection.socket.destroy();

  const offered = flooders.reduce((sum, flooder) => sum + flooder.offered, 0);
  const written = flooders.reduce((sum, flooder) => sum + flooder.written, 0);
  const blocked = flooders.reduce((sum, flooder) => sum + flooder.blocked, 0);
  const wallMs = reading?.wallMs ?? options.seconds * 1000;
  return {
    floodClients: flooders.length,
    seconds: options.seconds,
    capacityPerSecond: options.capacityPerSecond,
    offeredPerSecond,
    writtenPerSecond: written / (wallMs / 1000),
    blockedShare: offered > 0 ? blocked / offered : 0,
    deliveredPerSecond: deliveredDuring / (wallMs / 1000),
    deliveredAfter,
    floodClientsDisconnected,
    subscriberDisconnected,
    brokerAlive,
    freshClient,
    rssBeforeKiB,
    rssPeakKiB,
    reading: reading ?? { wallMs, brokerCpu: { userMs: Number.NaN, systemMs: Number.NaN, totalMs: Number.NaN, mainThreadMs: Number.NaN }, loadCpuMs: Number.NaN, otherCores: Number.NaN, stealCores: Number.NaN },
    brokerCpuUtilisation: reading ? reading.brokerCpu.totalMs / reading.wallMs : Number.NaN,
    loadCpuUtilisation: reading ? reading.loadCpuMs / reading.wallMs : Number.NaN,
  };
}
