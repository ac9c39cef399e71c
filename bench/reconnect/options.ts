import type { CapacitySearchOptions } from '../cluster/options.ts';
import { integerOption } from '../integer-option.ts';

/** What the reconnect-storm benchmark was asked to do (`npm run bench -- --only reconnect ...`). */
export interface ReconnectBenchOptions {
  /** Devices connected, dropped at once, and reconnecting in the storm. */
  readonly devices: number;
  /** The storm's arrival rate in percent of fleetgate's full-handshake capacity (150: 1.5x). */
  readonly ratePercent: number;
  /** fleetgate's full-handshake capacity in connects/s, when given: no search. */
  readonly capacity: number | undefined;
  /** How fleetgate's full-handshake capacity is searched (the cluster benchmark's search, one process). */
  readonly search: CapacitySearchOptions;
  /** Devices of each CPU-per-reconnect phase (full, then resumed), and their arrival rate. */
  readonly costDevices: number;
  readonly costRate: number;
  /** Clients connecting at a time while the fleet is first connected (full handshakes). */
  readonly fillConcurrency: number;
  /** The storm ends here whatever is left unconnected (counted as not connected). */
  readonly stormDeadlineSeconds: number;
}

export const RECONNECT_DEFAULTS = {
  devices: 10_000,
  ratePercent: 150,
  costDevices: 2_000,
  costRate: 100,
  fillConcurrency: 16,
  stormDeadlineSeconds: 300,
  search: { stepSeconds: 5, startRate: 100, stepPercent: 125, maxRate: 2_000, p99TargetMs: 500 },
} as const;

/** `--quick`: every phase, small, in about two minutes. */
export const RECONNECT_QUICK = {
  devices: 1_000,
  costDevices: 300,
  search: { stepSeconds: 3, startRate: 100, stepPercent: 150, maxRate: 600, p99TargetMs: 500 },
} as const;

/** The option definitions, for node:util parseArgs. */
export const RECONNECT_ARG_SPEC = {
  'reconnect-devices': { type: 'string' },
  'reconnect-rate-percent': { type: 'string' },
  capacity: { type: 'string' },
  'cost-devices': { type: 'string' },
  'cost-rate': { type: 'string' },
  'fill-concurrency': { type: 'string' },
  'storm-deadline-seconds': { type: 'string' },
  'capacity-start-rate': { type: 'string' },
  'capacity-step-percent': { type: 'string' },
  'capacity-max-rate': { type: 'string' },
  'capacity-step-seconds': { type: 'string' },
} as const;

/** Help text for the options above. */
export const RECONNECT_USAGE = `Reconnect-storm benchmark options (--only reconnect; fleetgate and mosquitto, pinned like the broker benchmark):
  --reconnect-devices N        devices connected, then dropped at once and reconnecting (default ${RECONNECT_DEFAULTS.devices})
  --reconnect-rate-percent P   the storm's arrival rate in percent of fleetgate's full-handshake capacity (default ${RECONNECT_DEFAULTS.ratePercent})
  --capacity R                 take fleetgate's full-handshake capacity as R connects/s instead of searching for it
  --capacity-start-rate R      the capacity search's first step (default ${RECONNECT_DEFAULTS.search.startRate}/s)
  --capacity-step-percent P    each step's rate in percent of the previous one (default ${RECONNECT_DEFAULTS.search.stepPercent})
  --capacity-max-rate R        highest rate tried (default ${RECONNECT_DEFAULTS.search.maxRate}/s)
  --capacity-step-seconds S    seconds of arrivals per step (default ${RECONNECT_DEFAULTS.search.stepSeconds})
  --cost-devices N             devices of each CPU-per-reconnect phase, full then resumed (default ${RECONNECT_DEFAULTS.costDevices})
  --cost-rate R                their arrival rate, connects/s (default ${RECONNECT_DEFAULTS.costRate})
  --fill-concurrency C         clients connecting at a time while the fleet first connects (default ${RECONNECT_DEFAULTS.fillConcurrency})
  --storm-deadline-seconds S   the storm ends by then, whatever is unconnected (default ${RECONNECT_DEFAULTS.stormDeadlineSeconds})
  --quick applies (${RECONNECT_QUICK.devices} devices, ${RECONNECT_QUICK.costDevices} per cost phase, capacity ${RECONNECT_QUICK.search.startRate}/s up by ${RECONNECT_QUICK.search.stepPercent} % to ${RECONNECT_QUICK.search.maxRate}/s); one run (--repeat does not apply)
  --cpu-prof applies to the fleetgate under measurement (not the capacity search's): its profile goes to bench/results/profiles/`;

/** The command line is wrong (same meaning as the enrollment benchmark's usage error). */
export class ReconnectUsageError extends Error {
  override readonly name = 'ReconnectUsageError';
}

function integer(raw: unknown, name: string, fallback: number, min: number, max: number): number {
  return integerOption(raw, name, { fallback, min, max }, (message) => new ReconnectUsageError(message));
}

/** The reconnect options from parseArgs values (the keys of {@link RECONNECT_ARG_SPEC}), over the defaults or the quick defaults. */
export function reconnectOptionsFrom(values: Readonly<Record<string, unknown>>, quick: boolean): ReconnectBenchOptions {
  const base = quick ? { ...RECONNECT_DEFAULTS, ...RECONNECT_QUICK } : RECONNECT_DEFAULTS;
  // Every held connection comes from a loopback source address and port (bench/broker/source-addresses.ts).
  const devices = integer(values['reconnect-devices'], 'reconnect-devices', base.devices, 10, 100_000);
  const startRate = integer(values['capacity-start-rate'], 'capacity-start-rate', base.search.startRate, 1, 20_000);
  const search: CapacitySearchOptions = {
    stepSeconds: integer(values['capacity-step-seconds'], 'capacity-step-seconds', base.search.stepSeconds, 1, 60),
    startRate,
    stepPercent: integer(values['capacity-step-percent'], 'capacity-step-percent', base.search.stepPercent, 105, 400),
    maxRate: integer(values['capacity-max-rate'], 'capacity-max-rate', base.search.maxRate, 1, 20_000),
    p99TargetMs: base.search.p99TargetMs,
  };
  if (search.maxRate < startRate) throw new ReconnectUsageError(`--capacity-max-rate (${search.maxRate}) is below --capacity-start-rate (${startRate})`);
  const options: ReconnectBenchOptions = {
    devices,
    ratePercent: integer(values['reconnect-rate-percent'], 'reconnect-rate-percent', base.ratePercent, 10, 10_000),
    capacity: values.capacity === undefined ? undefined : integer(values.capacity, 'capacity', 0, 1, 100_000),
    search,
    costDevices: integer(values['cost-devices'], 'cost-devices', base.costDevices, 1, 100_000),
    costRate: integer(values['cost-rate'], 'cost-rate', base.costRate, 1, 10_000),
    fillConcurrency: integer(values['fill-concurrency'], 'fill-concurrency', base.fillConcurrency, 1, 1_000),
    stormDeadlineSeconds: integer(values['storm-deadline-seconds'], 'storm-deadline-seconds', base.stormDeadlineSeconds, 5, 3_600),
  };
  if (options.costDevices > devices) throw new ReconnectUsageError(`--cost-devices (${options.costDevices}) is above the devices of the storm (${devices})`);
  return options;
}
