import { setTimeout as sleep } from 'node:timers/promises';
import { KEEPALIVE_SECONDS, type BrokerUnderTest } from '../broker/broker-under-test.ts';
import { openConnection, type ClientIdentity } from '../broker/mqtt-connection.ts';
import { startPhaseMeter } from '../broker/phase-meter.ts';
import { subscribeService } from '../broker/service-subscriber.ts';
import { WindowedPublisher } from '../broker/throughput.ts';
import { progress } from '../progress.ts';
import type { ClusterCpu, ClusterCpuPart } from './cluster-cpu.ts';

/** QoS 1 from devices to the backend service, as the service received it. */
export interface MessageResult {
  readonly label: string;
  readonly publishers: number;
  readonly window: number;
  /** Deliveries to the service inside the timed window, per second of it. */
  readonly deliveredPerSecond: number;
  /** PUBACKs the devices received inside the window, per second. */
  readonly acknowledgedPerSecond: number;
  /** Everything measured (every node, Redis, PostgreSQL; mosquitto alone) per delivered message. */
  readonly serverCpuUsPerMessage: number;
  readonly cpuUsPerMessageByPart?: Record<ClusterCpuPart, number>;
  readonly loadCores: number;
  /** Messages acknowledged to a device that the service had not received when the drain ended (QoS 1: should be 0). */
  readonly undelivered: number;
  /** Publishers whose connection closed during the phase. */
  readonly disconnected: number;
}

/** Untimed first second: windows fill, JIT settles. */
const RAMP_MS = 1_000;
/** How long the service may take to receive what was acknowledged, after the publishers stop. */
const DRAIN_TIMEOUT_MS = 15_000;

/**
 * `publishers` devices connected to `deviceBroker` each keep `window` QoS 1 messages in flight
 * to `devices/<id>/t`; the backend service, connected to `serviceBroker` (the same node, or
 * another node of the cluster), subscribes to `devices/+/t` at QoS 1 and acknowledges every
 * delivery. Counts deliveries to the service in a timed window and the CPU of `cpu` (or the
 * device broker's process) per delivery; then checks that every acknowledged message arrived.
 */
export async function measureDeviceToService(
  label: string,
  brokers: { readonly device: BrokerUnderTest; readonly service: BrokerUnderTest },
  identities: { readonly devices: readonly ClientIdentity[]; readonly service: ClientIdentity },
  options: { readonly publishers: number; readonly window: number; readonly seconds: number },
  cpu: ClusterCpu | undefined,
): Promise<MessageResult> {
  const subscriber = await subscribeService(brokers.service, identities.service, 'devices/+/t', 1);
  const connections = await Promise.all(
    identities.devices.slice(0, options.publishers).map(async (identity) => {
      const opened = await openConnection(brokers.device.address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: 30_000, serverCheck: 'chain' });
      if (!opened.ok) throw new Error(`${label}: publisher ${identity.clientId} could not connect: ${opened.failure}`);
      return { identity, connection: opened.connection };
    }),
  );
  try {
    const publishers = connections.map(({ identity, connection }) => new WindowedPublisher(connection, `devices/${identity.clientId}/t`, options.window));
    for (const publisher of publishers) publisher.start();
    await sleep(RAMP_MS);
    const meter = await startPhaseMeter(cpu?.probe ?? brokers.device.daemon.pid);
    const deliveredBefore = subscriber.delivered();
    for (const publisher of publishers) publisher.counting = true;
    await sleep(options.seconds * 1000);
    for (const publisher of publishers) publisher.counting = false;
    const delivered = subscriber.delivered() - deliveredBefore;
    const reading = await meter.stop();
    for (const publisher of publishers) publisher.sending = false;
    const acknowledged = publishers.reduce((sum, publisher) => sum + publisher.counted, 0);
    const acknowledgedInAll = (): number => publishers.reduce((sum, publisher) => sum + publisher.acked, 0);
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    while (performance.now() < deadline && (publishers.some((publisher) => !publisher.closed && publisher.acked < publisher.sent) || subscriber.delivered() < acknowledgedInAll())) await sleep(50);
    const seconds = reading.wallMs / 1000;
    const byPart = cpu?.lastPhase();
    const result: MessageResult = {
      label,
      publishers: publishers.length,
      window: options.window,
      deliveredPerSecond: delivered / seconds,
      acknowledgedPerSecond: acknowledged / seconds,
      serverCpuUsPerMessage: (reading.brokerCpu.totalMs * 1000) / Math.max(1, delivered),
      ...(byPart
        ? {
            cpuUsPerMessageByPart: {
              fleetgate: (byPart.fleetgate.totalMs * 1000) / Math.max(1, delivered),
              primary: (byPart.primary.totalMs * 1000) / Math.max(1, delivered),
              redis: (byPart.redis.totalMs * 1000) / Math.max(1, delivered),
              postgres: (byPart.postgres.totalMs * 1000) / Math.max(1, delivered),
            },
          }
        : {}),
      loadCores: reading.loadCpuMs / reading.wallMs,
      undelivered: Math.max(0, acknowledgedInAll() - subscriber.delivered()),
      disconnected: publishers.filter((publisher) => publisher.closed).length,
    };
    progress(
      `${label}: ${result.deliveredPerSecond.toFixed(0)} QoS 1 msgs/s delivered to the service, ${result.serverCpuUsPerMessage.toFixed(1)} us server CPU each, ` +
        `load generator ${result.loadCores.toFixed(2)} cores, ${result.undelivered} acknowledged but not delivered`,
    );
    return result;
  } finally {
    await Promise.all([...connections.map(({ connection }) => connection.disconnect()), subscriber.connection.disconnect()]);
  }
}
