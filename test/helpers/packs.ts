import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './run.ts';
import { waitFor } from './wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Held while a test packs: `npm pack` rebuilds a package's dist/ (prepack), and two test files packing at once would pack files the other is rewriting. */
const LOCK = join(REPO_ROOT, '.tmp', 'npm-pack.lock');

/** One tarball of `npm pack --json`. */
export interface PackedPackage {
  readonly name: string;
  readonly filename: string;
  readonly files: ReadonlyArray<{ readonly path: string }>;
}

/**
 * Packs workspaces (`device-sdk`, `server`, `simulator`) into `destination` with `npm pack`,
 * which builds each through its prepack first, so the tarballs hold what the sources say. One
 * test file packs at a time across the suite's worker processes (a lock directory: mkdir is
 * atomic), and a lock left by a killed run is taken over after `staleMs`.
 */
export async function packWorkspaces(workspaces: readonly string[], destination: string, env: NodeJS.ProcessEnv): Promise<PackedPackage[]> {
  await mkdir(join(REPO_ROOT, '.tmp'), { recursive: true });
  await waitFor(() => mkdir(LOCK).then(() => true, () => false), { what: `the npm pack lock ${LOCK} (remove it if no test runs)`, timeoutMs: 600_000, intervalMs: 250 });
  try {
    const result = await run('npm', ['pack', '--json', '--pack-destination', destination, ...workspaces.flatMap((name) => ['-w', name])], { cwd: REPO_ROOT, env, timeoutMs: 300_000 });
    if (result.code !== 0) throw new Error(`npm pack exited ${result.code}\n${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout) as PackedPackage[];
  } finally {
    await rmdir(LOCK);
  }
}
