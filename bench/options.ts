import { parseArgs } from 'node:util';

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

Enrollment benchmark: drives the real fleetgate CLI (init, bootstrap issue, serve) on 127.0.0.1
and measures EST simpleenroll over fresh mTLS connections: throughput, latency, and the server's
CPU per enrollment from /proc. Two floors put that CPU in context: openssl s_server per bare mTLS
handshake with the same keys, and a bare Node https server under the same load. Table on stdout,
progress on stderr, JSON in bench/results/latest.json and bench/results/enrollment-<timestamp>.json.
See docs/benchmarks.md.

Options:
  --enrollments N     timed enrollments per run, one fresh device each, up to 20000 (default ${DEFAULTS.enrollments})
  --concurrency C     concurrent clients, 1 to 512 (default ${DEFAULTS.concurrency})
  --repeat R          runs, each with a fresh data directory and server; medians reported (default ${DEFAULTS.repeat})
  --warmup W          untimed enrollments before each timed phase (default ${DEFAULTS.warmup})
  --floor-seconds S   length of each openssl s_time run (default ${DEFAULTS.floorSeconds})
  --no-node-floor     skip replaying each run's load against a bare Node https server
  --no-pin            do not pin server and load generator to separate CPUs with taskset
  --cpu-prof          run the server with node --cpu-prof; profiles go to bench/results/profiles/
                      (the profiler costs server CPU: do not compare those figures with others)
  --quick             smoke test: ${QUICK.enrollments} enrollments, ${QUICK.repeat} run, ${QUICK.warmup} warm-up, ${QUICK.floorSeconds} s floor
                      (explicit options still win)
  -h, --help          this help

Exit status: 0 when every enrollment succeeded (targets met or not: see the table), 1 when any
enrollment failed or the benchmark could not run, 2 on a usage error, 130 when interrupted.`;

function integer(raw: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BenchUsageError(`--${name} must be a whole number from ${min} to ${max} (got ${raw})`);
  }
  return value;
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
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new BenchUsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const quick = values.quick === true;
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
  };
}
