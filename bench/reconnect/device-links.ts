import { Backoff, DEFAULT_BACKOFF } from '@fleetgate/device-sdk';
import { KEEPALIVE_SECONDS } from '../broker/broker-under-test.ts';
import { openConnection, type BrokerAddress, type ClientIdentity, type MqttConnection, type OpenResult } from '../broker/mqtt-connection.ts';
import { sourceAddress } from '../broker/source-addresses.ts';

/** A connection not answered by then has failed; both brokers' own connect timeouts are 10 s. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * One simulated device of the reconnect benchmark: its identity, the TLS session its broker last
 * handed out (what the device SDK keeps per credential, device-sdk/src/tls-sessions.ts), and its
 * connection while it has one.
 */
export class DeviceLink {
  session: Buffer | undefined;
  connection: MqttConnection | undefined;
  /** When the current connection closed (performance.now), if it has. */
  closedAt: number | undefined;

  constructor(
    readonly index: number,
    readonly identity: ClientIdentity,
    /** Devices in the run: beyond 20,000 they spread over several loopback source addresses. */
    private readonly fleetSize: number,
  ) {}

  /**
   * One connection attempt: TLS (offering the kept session when `offerSession`), CONNECT,
   * CONNACK. Keeps every session the broker hands out (TLS 1.3: each ticket, the last one wins).
   */
  async connect(address: BrokerAddress, offerSession: boolean): Promise<OpenResult> {
    const localAddress = sourceAddress(this.index, this.fleetSize);
    const result = await openConnection(address, this.identity, {
      keepaliveSeconds: KEEPALIVE_SECONDS,
      timeoutMs: CONNECT_TIMEOUT_MS,
      serverCheck: 'chain',
      ...(localAddress === undefined ? {} : { localAddress }),
      ...(offerSession && this.session ? { session: this.session } : {}),
      onSession: (session) => {
        this.session = session;
      },
    });
    if (result.ok) {
      const connection = result.connection;
      this.connection = connection;
      this.closedAt = undefined;
      connection.onClose = () => {
        // A connection this device gave up (drop, disconnect) is not one the broker closed.
        if (this.connection === connection) this.closedAt = performance.now();
      };
    }
    return result;
  }

  /** A clean close (DISCONNECT), waiting until the socket has closed. */
  async disconnect(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    await connection?.disconnect(10_000);
  }

  /** Drops the connection without DISCONNECT, as a network outage or a restart would. */
  drop(): void {
    this.connection?.socket.destroy();
    this.connection = undefined;
  }
}

/**
 * Whether a failed attempt is how a broker sheds load: the socket closed or reset before the TLS
 * handshake finished. The device SDK reads it the same way and retries later with jitter
 * (device-sdk/src/connector.ts); anything else is an error.
 */
export function isShed(result: OpenResult): boolean {
  if (result.ok || result.afterHandshake) return false;
  return result.failure === 'ECONNRESET' || result.failure === 'EPIPE' || result.failure === 'closed during TLS handshake';
}

/** One attempt of a device in a storm. */
export interface StormAttempt {
  /** When it was due (its arrival, or its retry after a backoff), performance.now. */
  readonly scheduledAt: number;
  /** When the load generator started it (later than due when its own event loop is behind). */
  readonly startedAt: number;
  readonly answeredAt: number;
  /** `connected`, `shed`, or the failure (`timeout`, `CONNACK 5`, an error code ...). */
  readonly outcome: string;
  readonly resumed: boolean;
}

/** What one device went through in a storm. */
export interface DeviceReconnect {
  readonly arrivedAt: number;
  /** When it had its CONNACK; undefined when the deadline came first. */
  readonly connectedAt: number | undefined;
  readonly attempts: readonly StormAttempt[];
}

/**
 * A device coming back after an outage: attempts until connected, each failed one followed by
 * the device SDK's own backoff (full jitter, DEFAULT_BACKOFF), offering its kept session each
 * time; stops at `deadline` (performance.now).
 */
export async function reconnectWithBackoff(link: DeviceLink, address: BrokerAddress, arrivedAt: number, deadline: number): Promise<DeviceReconnect> {
  const backoff = new Backoff(DEFAULT_BACKOFF);
  const attempts: StormAttempt[] = [];
  let scheduledAt = arrivedAt;
  while (scheduledAt < deadline) {
    const startedAt = performance.now();
    const result = await link.connect(address, true);
    const answeredAt = performance.now();
    if (result.ok) {
      attempts.push({ scheduledAt, startedAt, answeredAt, outcome: 'connected', resumed: result.resumed });
      return { arrivedAt, connectedAt: answeredAt, attempts };
    }
    attempts.push({ scheduledAt, startedAt, answeredAt, outcome: isShed(result) ? 'shed' : result.failure, resumed: false });
    const delay = backoff.next();
    scheduledAt = answeredAt + delay;
    if (scheduledAt >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return { arrivedAt, connectedAt: undefined, attempts };
}
