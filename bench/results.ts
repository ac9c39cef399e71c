import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Where results go; gitignored, so a run never dirties the working tree. */
export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

/** Where `--cpu-prof` leaves the server's .cpuprofile files (open them in Chrome DevTools). */
export const PROFILES_DIR = join(RESULTS_DIR, 'profiles');

/** Which benchmark a report belongs to: it names the files. */
export type BenchmarkName = 'enrollment' | 'broker' | 'cluster' | 'memory' | 'memory-storm' | 'reconnect' | 'shedding';

/** The "latest" file of each benchmark (the enrollment benchmark's predates the broker's). */
const LATEST: Readonly<Record<BenchmarkName, string>> = { enrollment: 'latest.json', broker: 'latest-broker.json', cluster: 'latest-cluster.json', memory: 'latest-memory.json', 'memory-storm': 'latest-memory-storm.json', reconnect: 'latest-reconnect.json', shedding: 'latest-shedding.json' };

/**
 * Writes `report` as `<benchmark>-<timestamp>.json` and as the benchmark's latest file
 * (`latest.json` for enrollment, `latest-<benchmark>.json` for the others); returns the first path.
 * The timestamp has no colons so the name is valid on every file system.
 */
export async function writeResults(report: unknown, startedAt: Date, benchmark: BenchmarkName = 'enrollment'): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const path = join(RESULTS_DIR, `${benchmark}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(path, json);
  await writeFile(join(RESULTS_DIR, LATEST[benchmark]), json);
  return path;
}
