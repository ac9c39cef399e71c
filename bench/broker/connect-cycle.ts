import { openConnection, type BrokerAddress, type ClientIdentity, type MqttConnection } from './mqtt-connection.ts';
import { publishBatch, publishTemplate } from './mqtt-wire.ts';
import { KEEPALIVE_SECONDS } from './broker-under-test.ts';

/** A small telemetry reading: the payload of every benchmark message. */
export const PAYLOAD = Buffer.alloc(64, 0x61);

/** One connect cycle as the load generator counts it. */
export interface CycleOutcome {
  /** Why it failed (`CONNACK 5`, `ECONNRESET`, `no PUBACK` ...), or undefined. */
  readonly failure: string | undefined;
  /** From `tls.connect` to the PUBACK. */
  readonly latencyMs: number;
  /** Negotiated TLS version and suite. */
  readonly protocol: string | undefined;
}

/** A cycle stuck longer than this has failed (the brokers' own connect timeouts are 10 s and more). */
export const CYCLE_TIMEOUT_MS = 30_000;

/** Sends one QoS 1 PUBLISH with packet identifier 1 and waits for its PUBACK. */
export function publishOnce(connection: MqttConnection, topic: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('no PUBACK (timeout)'), timeoutMs);
    const done = (failure: string | undefined): void => {
      clearTimeout(timer);
      connection.onPuback = () => undefined;
      connection.onClose = () => undefined;
      resolve(failure);
    };
    connection.onPuback = (id) => done(id === 1 ? undefined : `PUBACK for unknown packet ${id}`);
    connection.onClose = () => done(`closed before PUBACK${connection.error ? ` (${connection.error})` : ''}`);
    connection.write(publishBatch(publishTemplate(topic, PAYLOAD, 1), 1, 1));
  });
}

/**
 * What a device does when it reports and goes back to sleep: a fresh TLS connection (full
 * handshake), CONNECT, CONNACK, one QoS 1 PUBLISH to `devices/<id>/x` (inside its own namespace,
 * so both brokers' ACLs let it through), its PUBACK, DISCONNECT and close. Resolves once the
 * socket has closed, so the broker's share of the teardown is inside the measured phase.
 */
export async function connectCycle(address: BrokerAddress, identity: ClientIdentity, localAddress?: string): Promise<CycleOutcome> {
  const started = performance.now();
  const opened = await openConnection(address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: CYCLE_TIMEOUT_MS, localAddress, serverCheck: 'chain' });
  if (!opened.ok) return { failure: opened.failure, latencyMs: performance.now() - started, protocol: undefined };
  const { connection } = opened;
  const protocol = connection.protocol;
  const failure = await publishOnce(connection, `devices/${identity.clientId}/x`, CYCLE_TIMEOUT_MS);
  const latencyMs = performance.now() - started;
  if (failure) connection.socket.destroy();
  else await connection.disconnect();
  return { failure, latencyMs, protocol };
}
