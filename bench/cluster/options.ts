import { integerOption } from '../integer-option.ts';

/** How a storm capacity is searched (bench/cluster/capacity.ts): open-loop steps at rising rates. */
export interface CapacitySearchOptions {
  /** Seconds of arrivals per storm step: a step offers `rate x stepSeconds` devices. */
  readonly stepSeconds: number;
  /** The first storm step's arrival rate, connections per second. */
  readonly startRate: number;
  /** Each step's rate over the previous one's, in percent (125: +25 % per step). */
  readonly stepPercent: number;
  /** No step offers more than this; the fleet is enrolled for it. */
  readonly maxRate: number;
  /** A step passes when every device connected and CONNACK p99 (from the scheduled arrival) is at most this. */
  readonly p99TargetMs: number;
}

/** What the cluster benchmark was asked to do (`npm run bench -- --only cluster ...`). */
export interface ClusterBenchOptions extends CapacitySearchOptions {
  /** Device publishers of the QoS 1 phase, each keeping `window` messages in flight. */
  readonly publishers: number;
  readonly window: number;
  /** Length of each QoS 1 phase (same node, across nodes, mosquitto). */
  readonly messageSeconds: number;
}

export const CLUSTER_DEFAULTS = {
  stepSeconds: 5,
  startRate: 50,
  stepPercent: 125,
  maxRate: 1000,
  p99TargetMs: 500,
  publishers: 10,
  window: 32,
  messageSeconds: 8,
} as const;

/** `--quick`: every phase once, small, in about three minutes. */
export const CLUSTER_QUICK = { stepSeconds: 3, startRate: 100, stepPercent: 150, maxRate: 400, messageSeconds: 3 } as const;

/** The option definitions, for node:util parseArgs. */
export const CLUSTER_ARG_SPEC = {
  'step-seconds': { type: 'string' },
  'start-rate': { type: 'string' },
  'step-percent': { type: 'string' },
  'max-rate': { type: 'string' },
  'p99-target-ms': { type: 'string' },
  'message-publishers': { type: 'string' },
  'message-window': { type: 'string' },
  'message-seconds': { type: 'string' },
} as const;

/** Help text for the options above. */
export const CLUSTER_USAGE = `Cluster benchmark options (--only cluster; fleetgate on PostgreSQL and Redis, each started for the run):
  --start-rate R          first storm step, connections per second (default ${CLUSTER_DEFAULTS.startRate})
  --step-percent P        each step's rate in percent of the previous one (default ${CLUSTER_DEFAULTS.stepPercent})
  --max-rate R            highest rate tried; the fleet is enrolled for it (default ${CLUSTER_DEFAULTS.maxRate})
  --step-seconds S        seconds of arrivals per step (default ${CLUSTER_DEFAULTS.stepSeconds})
  --p99-target-ms T       a step passes with every device connected and CONNACK p99 <= T (default ${CLUSTER_DEFAULTS.p99TargetMs})
  --message-publishers P  device publishers in the QoS 1 phases (default ${CLUSTER_DEFAULTS.publishers})
  --message-window W      QoS 1 messages each keeps in flight (default ${CLUSTER_DEFAULTS.window})
  --message-seconds S     length of each QoS 1 phase (default ${CLUSTER_DEFAULTS.messageSeconds})
  --quick applies (${CLUSTER_QUICK.startRate}/s up by ${CLUSTER_QUICK.stepPercent} % to ${CLUSTER_QUICK.maxRate}/s, ${CLUSTER_QUICK.stepSeconds} s steps); one run (--repeat does not apply)`;

/** The command line is wrong (same meaning as the enrollment benchmark's usage error). */
export class ClusterUsageError extends Error {
  override readonly name = 'ClusterUsageError';
}

function integer(raw: unknown, name: string, fallback: number, min: number, max: number): number {
  return integerOption(raw, name, { fallback, min, max }, (message) => new ClusterUsageError(message));
}

/** The cluster options from parseArgs values (the keys of {@link CLUSTER_ARG_SPEC}), over the defaults or the quick defaults. */
export function clusterOptionsFrom(values: Readonly<Record<string, unknown>>, quick: boolean): ClusterBenchOptions {
  const base = quick ? { ...CLUSTER_DEFAULTS, ...CLUSTER_QUICK } : CLUSTER_DEFAULTS;
  const startRate = integer(values['start-rate'], 'start-rate', base.startRate, 1, 20_000);
  const options: ClusterBenchOptions = {
    stepSeconds: integer(values['step-seconds'], 'step-seconds', base.stepSeconds, 1, 60),
    startRate,
    stepPercent: integer(values['step-percent'], 'step-percent', base.stepPercent, 105, 400),
    maxRate: integer(values['max-rate'], 'max-rate', base.maxRate, 1, 20_000),
    p99TargetMs: integer(values['p99-target-ms'], 'p99-target-ms', base.p99TargetMs, 10, 60_000),
    publishers: integer(values['message-publishers'], 'message-publishers', base.publishers, 1, 1000),
    // Packet identifiers are 16-bit and must be unique among a client's messages in flight.
    window: integer(values['message-window'], 'message-window', base.window, 1, 10_000),
    messageSeconds: integer(values['message-seconds'], 'message-seconds', base.messageSeconds, 1, 600),
  };
  if (options.maxRate < startRate) throw new ClusterUsageError(`--max-rate (${options.maxRate}) is below --start-rate (${startRate})`);
  return options;
}

/** The rates the storm steps through: from the start rate up by the step, the last one at most the maximum. */
export function stormRates(options: Pick<CapacitySearchOptions, 'startRate' | 'stepPercent' | 'maxRate'>): number[] {
  const rates: number[] = [];
  for (let rate = options.startRate; rate <= options.maxRate; rate = Math.max(rate + 1, Math.round((rate * options.stepPercent) / 100))) rates.push(rate);
  return rates;
}
