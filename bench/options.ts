import { parseArgs } from 'node:util';
import { integerOption } from './integer-option.ts';
import { BROKER_ARG_SPEC, BROKER_USAGE, BrokerUsageError, brokerOptionsFrom, type BrokerBenchOptions } from './broker/options.ts';
import { CLUSTER_ARG_SPEC, CLUSTER_USAGE, ClusterUsageError, clusterOptionsFrom, type ClusterBenchOptions } from './cluster/options.ts';
import { RECONNECT_ARG_SPEC, RECONNECT_USAGE, ReconnectUsageError, reconnectOptionsFrom, type ReconnectBenchOptions } from './reconnect/options.ts';

/**
 * Which benchmarks `npm run bench` runs (`--only`): enrollment and broker by default; the cluster
 * benchmark only when asked for, since it needs PostgreSQL and Redis besides mosquitto.
 */
export type BenchSelection = 'all' | 'enrollment' | 'broker' | 'cluster' | 'reconnect';

/**
 * The registries the enrollment benchmark measures (`--registry`): LevelDB alone (the default),
 * or LevelDB and PostgreSQL in the same repetitions, so that their ratio pairs figures taken
 * under the same conditions. `--registry postgres` and `--registry both` both mean the latter.
 */
export type RegistrySelection = 'leveldb' | 'both';

/** What `npm run bench` was asked to do. */
export interface BenchOptions {
  readonly enrollments: number;
  readonly concurrency: number;
  readonly repeat: number;
  readonly warmup: number;
  /** Length of each `openssl s_time` run. */
  readonly floorSeconds: number;
  /** Replay each run's load against a bare Node https server (node-floor-server.ts). */
  readonly nodeFloor: boolean;
  readonly pin: boolean;
  readonly quick: boolean;
  /** Profile the server with `node --cpu-prof` (the profiler's overhead inflates its CPU figures). */
  readonly cpuProf: boolean;
  /** Run the servers with a perf map (`--perf-basic-prof`), so that Linux `perf` names their JavaScript frames. */
  readonly perfMap: boolean;
  readonly only: BenchSelection;
  readonly registry: RegistrySelection;
  /** The broker benchmark's options (bench/broker/options.ts). */
  readonly broker: BrokerBenchOptions;
  /** The cluster benchmark's options (bench/cluster/options.ts). */
  readonly cluster: ClusterBenchOptions;
  /** The reconnect-storm benchmark's options (bench/reconnect/options.ts). */
  readonly reconnect: ReconnectBenchOptions;
}

/** The command line is wrong. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

const DEFAULTS = { enrollments: 2000, concurrency: 32, repeat: 3, warmup: 100, floorSeconds: 5 } as const;
/** `--quick`: a smoke test that finishes in well under a minute. */
const QUICK = { enrollments: 300, repeat: 1, warmup: 30, floorSeconds: 2 } as const;

/** What `npm run bench -- --help` prints. */
export const USAGE = `Usage: npm run bench -- [options]

Runs the enrollment benchmark, then the broker benchmark (--only picks one).

Enrollment benchmark: drives the real fleetgate CLI (init, bootstrap issue, serve) on 127.0.0.1
and measures EST simpleenroll over fresh mTLS connections: throughput, latency, and the server's
CPU per enrollment from /proc. Two floors put that CPU in context: openssl s_server per bare mTLS
handshake with the same keys, and a bare Node https server under the same load. Table on stdout,
progress on stderr, JSON in bench/results/latest.json and bench/results/enrollment-<timestamp>.json.
See docs/benchmarks.md.

With --registry postgres, every repetition measures the server twice, on LevelDB and on
PostgreSQL (a throwaway server of its own per run, default settings, pinned with fleetgate),
and a second table compares them: enrollments/s, and server CPU per enrollment as fleetgate's
process plus every process of that PostgreSQL server. JSON as above, each repetition with both
runs.

Broker benchmark: fleetgate's MQTT broker and mosquitto, fresh per run, with the same enrolled
device certificates and the same load: broker CPU per mTLS connect, CONNACK latency of an
open-loop connection storm, QoS 1 messages/s through the ACL, RSS per held connection, and a
QoS 0 flood at twice the measured capacity. Table on stdout, JSON in
bench/results/latest-broker.json and bench/results/broker-<timestamp>.json.

Cluster benchmark (--only cluster, not part of the default run): fleetgate on a throwaway
PostgreSQL and Redis with 1 worker, then 2 workers, and mosquitto, unpinned: each one's storm
capacity (the highest open-loop arrival rate whose CONNACK p99 stays within 500 ms, found by
stepping the rate), the CPU per connect of fleetgate with Redis and PostgreSQL, and QoS 1
messages from devices to a backend service within one node and across two nodes. JSON in
bench/results/latest-cluster.json and bench/results/cluster-<timestamp>.json.

Reconnect-storm benchmark (--only reconnect, not part of the default run): fleetgate's
full-handshake capacity (a storm search with shedding off), then fleetgate as shipped (shedding
on) and mosquitto in turn: the whole fleet connected, server CPU per full and per resumed
reconnect (TLS 1.3 session tickets), and a storm of every device dropped at once and coming
back at 1.5x that capacity, offering its session and retrying with the device SDK's backoff when
shed. JSON in bench/results/latest-reconnect.json, chart of connected devices over time in
bench/results/reconnect-storm.svg.

Options:
  --only WHICH        enrollment, broker, cluster or reconnect (default: enrollment, then broker)
  --registry R        enrollment benchmark's registry: leveldb (default), or postgres or both,
                      which are the same: LevelDB and PostgreSQL in every repetition, alternating
                      which goes first, and their ratio (the newest PostgreSQL, 14 or later, under
                      /usr/lib/postgresql/<version>/bin; FLEETGATE_PG_BIN overrides)
  --enrollments N     timed enrollments per run, one fresh device each, up to 20000 (default ${DEFAULTS.enrollments})
  --concurrency C     concurrent clients, 1 to 512 (default ${DEFAULTS.concurrency})
  --repeat R          runs, each with a fresh data directory and server; medians reported (default ${DEFAULTS.repeat})
  --warmup W          untimed enrollments before each timed phase (default ${DEFAULTS.warmup})
  --floor-seconds S   length of each openssl s_time run (default ${DEFAULTS.floorSeconds})
  --no-node-floor     skip replaying each run's load against a bare Node https server
  --no-pin            do not pin server and load generator to separate CPUs with taskset
  --cpu-prof          run the server (and the bare Node https floor server) with node --cpu-prof;
                      profiles go to bench/results/profiles/
                      (the profiler costs server CPU: do not compare those figures with others)
  --perf-map          run the server and the Node floor server (with --only reconnect: the measured
                      fleetgate and the Node TLS floor) with node --perf-basic-prof
                      --interpreted-frames-native-stack, so that Linux perf names their JavaScript
                      frames (/tmp/perf-<pid>.map; the pids are printed): sample them with perf
                      record, which charges every thread its own CPU (docs/benchmarks.md)
  --quick             smoke test: ${QUICK.enrollments} enrollments, ${QUICK.repeat} run, ${QUICK.warmup} warm-up, ${QUICK.floorSeconds} s floor
                      (explicit options still win)
  -h, --help          this help

${BROKER_USAGE}

${CLUSTER_USAGE}

${RECONNECT_USAGE}

Exit status: 0 when every enrollment and every broker connection succeeded and both brokers
survived the overload, and (--only reconnect) fleetgate's storm met its target: every device
connected, admitted CONNACK p99 <= 500 ms, no error but shedding (other targets met or not: see
the tables); 1 when one of those failed or a benchmark could not run; 2 on a usage error; 130
when interrupted.`;

function integer(raw: string | undefined, name: string, fallback: number, min: number, max: number): number {
  return integerOption(raw, name, { fallback, min, max }, (message) => new BenchUsageError(message));
}

/** Parses the benchmark's arguments; `undefined` means --help was asked for. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        enrollments: { type: 'string' },
        concurrency: { type: 'string' },
        repeat: { type: 'string' },
        warmup: { type: 'string' },
        'floor-seconds': { type: 'string' },
        'no-node-floor': { type: 'boolean' },
        'no-pin': { type: 'boolean' },
        quick: { type: 'boolean' },
        'cpu-prof': { type: 'boolean' },
        'perf-map': { type: 'boolean' },
        only: { type: 'string' },
        registry: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...BROKER_ARG_SPEC,
        ...CLUSTER_ARG_SPEC,
        ...RECONNECT_ARG_SPEC,
      },
    }));
  } catch (error) {
    throw new BenchUsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const quick = values.quick === true;
  const only = values.only ?? 'all';
  if (only !== 'all' && only !== 'enrollment' && only !== 'broker' && only !== 'cluster' && only !== 'reconnect') throw new BenchUsageError(`--only must be enrollment, broker, cluster or reconnect (got ${only})`);
  const registry = values.registry ?? 'leveldb';
  if (registry !== 'leveldb' && registry !== 'postgres' && registry !== 'both') throw new BenchUsageError(`--registry must be leveldb, postgres or both (got ${registry})`);
  if (values.registry !== undefined && (only === 'broker' || only === 'cluster' || only === 'reconnect')) throw new BenchUsageError(`--registry applies to the enrollment benchmark, not to --only ${only}`);
  const clusterFlags = Object.keys(CLUSTER_ARG_SPEC).filter((name) => values[name as keyof typeof values] !== undefined);
  if (clusterFlags.length > 0 && only !== 'cluster') throw new BenchUsageError(`--${clusterFlags[0]} applies to --only cluster`);
  const reconnectFlags = Object.keys(RECONNECT_ARG_SPEC).filter((name) => values[name as keyof typeof values] !== undefined);
  if (reconnectFlags.length > 0 && only !== 'reconnect') throw new BenchUsageError(`--${reconnectFlags[0]} applies to --only reconnect`);
  const base = quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  return {
    // Each enrollment is a new connection from 127.0.0.1 to one port, and each run replays them
    // against the Node floor: beyond ~20k the ~28k ephemeral ports (DESIGN.md) would run out.
    enrollments: integer(values.enrollments, 'enrollments', base.enrollments, 1, 20_000),
    // The server answers 503 beyond est.maxConcurrent (512 by default): more would measure refusals.
    concurrency: integer(values.concurrency, 'concurrency', base.concurrency, 1, 512),
    repeat: integer(values.repeat, 'repeat', base.repeat, 1, 20),
    warmup: integer(values.warmup, 'warmup', base.warmup, 0, 2_000),
    floorSeconds: integer(values['floor-seconds'], 'floor-seconds', base.floorSeconds, 1, 60),
    nodeFloor: values['no-node-floor'] !== true,
    pin: values['no-pin'] !== true,
    quick,
    cpuProf: values['cpu-prof'] === true,
    perfMap: values['perf-map'] === true,
    only,
    registry: registry === 'leveldb' ? 'leveldb' : 'both',
    broker: brokerOptions(values, quick),
    cluster: asBenchUsage(() => clusterOptionsFrom(values, quick), ClusterUsageError),
    reconnect: asBenchUsage(() => reconnectOptionsFrom(values, quick), ReconnectUsageError),
  };
}

/** Runs a benchmark's own option parser, its usage error becoming the shared one (exit status 2). */
function asBenchUsage<T>(parse: () => T, usageError: new (message: string) => Error): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof usageError) throw new BenchUsageError(error.message);
    throw error;
  }
}

/** The broker options; --repeat, --quick, --no-pin and --cpu-prof are shared with the enrollment benchmark. */
function brokerOptions(values: Readonly<Record<string, unknown>>, quick: boolean): BrokerBenchOptions {
  return asBenchUsage(
    () =>
      brokerOptionsFrom(values, {
        quick,
        repeat: values.repeat === undefined ? undefined : integer(String(values.repeat), 'repeat', 3, 1, 20),
        pin: values['no-pin'] !== true,
        cpuProf: values['cpu-prof'] === true,
      }),
    BrokerUsageError,
  );
}
