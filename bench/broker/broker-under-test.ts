import type { Daemon } from '../daemon.ts';
import type { CpuProbe } from './phase-meter.ts';
import { waitUntilReady } from '../wait-ready.ts';
import { openConnection, type BrokerAddress, type ClientIdentity } from './mqtt-connection.ts';

/** The two brokers compared. */
export type BrokerKind = 'fleetgate' | 'mosquitto';

/** What can be measured: a broker, or the bare Node TLS server that is fleetgate's floor. */
export type ServerKind = BrokerKind | 'node TLS floor';

/** A broker process started for one repetition (or one overload test) and where it listens. */
export interface BrokerUnderTest {
  readonly kind: ServerKind;
  readonly address: BrokerAddress;
  /** The broker process itself (its pid is what /proc is read by). */
  readonly daemon: Daemon;
  /** What differs from the broker's defaults, for the report. */
  readonly settings: readonly string[];
  /**
   * The CPU the broker's figures count, when it is more than the daemon's own process: a
   * `--workers` primary with its workers, plus the Redis and PostgreSQL a cluster runs on.
   */
  readonly cpu?: CpuProbe;
}

/** Keepalive every benchmark client asks for: inside both brokers' limits, never reached in a phase. */
export const KEEPALIVE_SECONDS = 600;

/** How long a broker may take from spawn to its first CONNACK (tsx compiles fleetgate on first start). */
const READY_TIMEOUT_MS = 60_000;

/**
 * Waits until the broker answers an MQTT CONNECT over mTLS with CONNACK 0: the listener is up and
 * the certificates, the identity mapping and the trust anchor all work, before anything is timed.
 */
export async function waitForConnack(daemon: Daemon, address: BrokerAddress, identity: ClientIdentity): Promise<void> {
  await waitUntilReady(
    daemon,
    async () => {
      const result = await openConnection(address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: 2_000 });
      if (!result.ok) return result.failure;
      await result.connection.disconnect();
      return undefined;
    },
    READY_TIMEOUT_MS,
  );
}
