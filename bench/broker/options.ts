import { integerOption } from '../integer-option.ts';

/** What the broker benchmark was asked to do (`npm run bench -- --only broker ...`). */
export interface BrokerBenchOptions {
  /** Repetitions, each with a fresh fleetgate and a fresh mosquitto. */
  readonly repeat: number;
  /** Connect cycles for the CPU-per-connect figure. */
  readonly connects: number;
  /** Concurrent clients in the connect cycles. */
  readonly concurrency: number;
  /** Untimed connect cycles after each broker starts (JIT, TLS and allocator warm-up). */
  readonly warmup: number;
  /** Devices in the connection storm, each held open after its CONNACK. */
  readonly stormDevices: number;
  /** Storm arrival rate, connections per second, on a fixed schedule (open loop). */
  readonly stormRate: number;
  /** QoS 1 publishers and how many messages each keeps in flight. */
  readonly publishers: number;
  readonly window: number;
  /** Length of the QoS 1 throughput phase. */
  readonly throughputSeconds: number;
  /** Length of the QoS 0 flood, at twice the measured QoS 1 capacity. */
  readonly overloadSeconds: number;
  /** Clients flooding. */
  readonly floodClients: number;
  readonly pin: boolean;
  /** Run the fleetgate broker under `node --cpu-prof` (its CPU figures then include the profiler). */
  readonly cpuProf: boolean;
}

/** The defaults of the issue ("Performance targets" in DESIGN.md). */
export const BROKER_DEFAULTS = {
  repeat: 3,
  connects: 2000,
  concurrency: 32,
  warmup: 300,
  stormDevices: 10_000,
  stormRate: 500,
  publishers: 20,
  window: 64,
  throughputSeconds: 10,
  overloadSeconds: 10,
  floodClients: 4,
} as const;

/** `--quick`: a smoke test of every phase in about two minutes. */
export const BROKER_QUICK = {
  repeat: 1,
  connects: 500,
  warmup: 100,
  stormDevices: 1000,
  stormRate: 500,
  throughputSeconds: 4,
  overloadSeconds: 4,
} as const;

/** The option definitions, for node:util parseArgs. */
export const BROKER_ARG_SPEC = {
  connects: { type: 'string' },
  'connect-concurrency': { type: 'string' },
  'broker-warmup': { type: 'string' },
  'storm-devices': { type: 'string' },
  'storm-rate': { type: 'string' },
  publishers: { type: 'string' },
  window: { type: 'string' },
  'throughput-seconds': { type: 'string' },
  'overload-seconds': { type: 'string' },
  'flood-clients': { type: 'string' },
} as const;

/** Help text for the options above. */
export const BROKER_USAGE = `Broker benchmark options (fleetgate and mosquitto, same certificates, same load):
  --connects N            connect cycles (TLS, CONNECT, QoS 1 PUBLISH, PUBACK, DISCONNECT) per broker (default ${BROKER_DEFAULTS.connects})
  --connect-concurrency C clients running connect cycles at once (default ${BROKER_DEFAULTS.concurrency})
  --broker-warmup W       untimed connect cycles after each broker starts (default ${BROKER_DEFAULTS.warmup})
  --storm-devices N       devices in the connection storm, held open after CONNACK (default ${BROKER_DEFAULTS.stormDevices})
  --storm-rate R          storm arrivals per second, on a fixed schedule (default ${BROKER_DEFAULTS.stormRate})
  --publishers P          QoS 1 publishers in the throughput phase (default ${BROKER_DEFAULTS.publishers})
  --window W              QoS 1 messages each publisher keeps in flight (default ${BROKER_DEFAULTS.window})
  --throughput-seconds S  length of the throughput phase (default ${BROKER_DEFAULTS.throughputSeconds})
  --overload-seconds S    length of the QoS 0 flood at twice the measured capacity (default ${BROKER_DEFAULTS.overloadSeconds})
  --flood-clients F       clients flooding (default ${BROKER_DEFAULTS.floodClients})
  --repeat, --no-pin, --cpu-prof and --quick apply too (--quick: ${BROKER_QUICK.stormDevices} devices at ${BROKER_QUICK.stormRate}/s, ${BROKER_QUICK.connects} connects, 1 run)`;

/** The command line is wrong (same meaning as the enrollment benchmark's usage error). */
export class BrokerUsageError extends Error {
  override readonly name = 'BrokerUsageError';
}

function integer(raw: unknown, name: string, fallback: number, min: number, max: number): number {
  return integerOption(raw, name, { fallback, min, max }, (message) => new BrokerUsageError(message));
}

/**
 * The broker options from parseArgs values (the keys of {@link BROKER_ARG_SPEC}), over the
 * defaults or the quick defaults; `repeat` is shared with the enrollment benchmark and passed in.
 */
export function brokerOptionsFrom(
  values: Readonly<Record<string, unknown>>,
  shared: { readonly quick: boolean; readonly repeat: number | undefined; readonly pin: boolean; readonly cpuProf: boolean },
): BrokerBenchOptions {
  const base = shared.quick ? { ...BROKER_DEFAULTS, ...BROKER_QUICK } : BROKER_DEFAULTS;
  return {
    repeat: shared.repeat ?? base.repeat,
    connects: integer(values.connects, 'connects', base.connects, 1, 100_000),
    concurrency: integer(values['connect-concurrency'], 'connect-concurrency', base.concurrency, 1, 1024),
    warmup: integer(values['broker-warmup'], 'broker-warmup', base.warmup, 0, 10_000),
    // Held connections need a file descriptor each on both sides; the limit is checked at start.
    stormDevices: integer(values['storm-devices'], 'storm-devices', base.stormDevices, 1, 200_000),
    stormRate: integer(values['storm-rate'], 'storm-rate', base.stormRate, 1, 20_000),
    publishers: integer(values.publishers, 'publishers', base.publishers, 1, 1000),
    // Packet identifiers are 16-bit and must be unique among a client's messages in flight.
    window: integer(values.window, 'window', base.window, 1, 10_000),
    throughputSeconds: integer(values['throughput-seconds'], 'throughput-seconds', base.throughputSeconds, 1, 600),
    overloadSeconds: integer(values['overload-seconds'], 'overload-seconds', base.overloadSeconds, 1, 600),
    floodClients: integer(values['flood-clients'], 'flood-clients', base.floodClients, 1, 100),
    pin: shared.pin,
    cpuProf: shared.cpuProf,
  };
}
