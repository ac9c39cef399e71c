/**
 * `npm run bench:packages`: the packages as a firmware team or an operator gets them. Packs the
 * SDK, the server and the simulator (`npm pack`, which builds each through its prepack), installs
 * each tarball alone into its own fresh project in a temp directory outside the repository, and
 * measures what installing and starting them costs: tarball and installed sizes, how many
 * packages come along, the SDK's cold import (ES module and CommonJS) and the installed commands'
 * start-up, each against `node -e 0` on the same machine. See docs/benchmarks.md.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, lstat, writeFile, mkdir } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { installCleanupHandlers, interruption, makeTempDir, removeTempDir, sweepStaleTempDirs, trackChild } from './cleanup.ts';
import { execCommand } from './exec.ts';
import { describeMachine } from './machine.ts';
import { progress } from './progress.ts';
import { RESULTS_DIR } from './results.ts';
import { median } from './stats.ts';
import type { Spread } from './summary.ts';
import { renderTable } from './table.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The issue's start-up target for `fleetgate --help`, wall time from spawn to exit. */
const HELP_TARGET_MS = 250;

const DEFAULT_RUNS = 10;

/** npm pack builds three packages (tsc) and npm install may fill its cache: generous, only a hang trips them. */
const PACK_TIMEOUT_MS = 600_000;
const INSTALL_TIMEOUT_MS = 600_000;
/** One timed process (a `--help`, an import): seconds at most, even on a loaded machine. */
const RUN_TIMEOUT_MS = 60_000;

const USAGE = `Usage: npm run bench:packages -- [--runs N]

Packs @fleetgate/device-sdk, @fleetgate/server and @fleetgate/simulator (npm pack, which builds
each through its prepack), installs each tarball alone into a fresh project in a temp directory
outside the repository (npm install --prefer-offline --no-audit --no-fund; the server and the
simulator get the tarballs they depend on with them, as @fleetgate/device-sdk is not on the
registry yet) and measures:

  sizes       packed and unpacked size of each tarball (npm pack --json); bytes of the files
              under node_modules after installing it, and how many packages that is
  SDK import  import('@fleetgate/device-sdk') and require('@fleetgate/device-sdk') in a fresh
              node process: the import alone (performance.now() in the child) and the whole
              process (spawn to exit)
  start-up    the installed fleetgate --help, fleetgate device list --help and fleetgate-sim
              --help, spawn to exit (target: fleetgate --help <= ${HELP_TARGET_MS} ms)
  floor       node -e 0, measured the same way, in the same rounds

Each timed process runs once untimed (disk cache), then N times in rounds that take every
measurement in turn, so that a change of load on a shared machine hits them all alike. Median
and min-max. Table on stdout, progress on stderr, JSON in bench/results/latest-packages.json and
bench/results/packages-<timestamp>.json. The 1-minute load average before and after is reported.

Options:
  --runs N     timed runs of each process, 1 to 50 (default ${DEFAULT_RUNS})
  -h, --help   this help

Exit status: 0 when everything packed, installed and ran (the target met or not: see the
table), 1 when something failed, 2 on a usage error, 130 when interrupted.`;

/** The workspaces packed, and which of the tarballs each one's scratch project installs. */
const PACKAGES = [
  { name: '@fleetgate/device-sdk', workspace: 'device-sdk', installWith: [] },
  { name: '@fleetgate/server', workspace: 'server', installWith: ['@fleetgate/device-sdk'] },
  { name: '@fleetgate/simulator', workspace: 'simulator', installWith: ['@fleetgate/device-sdk', '@fleetgate/server'] },
] as const;

type PackageName = (typeof PACKAGES)[number]['name'];

/** What `npm pack --json` reports of one tarball (the fields used here). */
interface PackEntry {
  readonly name: string;
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly entryCount: number;
}

/** One package: its tarball, and what installing that tarball alone brought. */
interface PackageFigures {
  readonly name: PackageName;
  readonly tarball: string;
  readonly packedBytes: number;
  readonly unpackedBytes: number;
  readonly files: number;
  /** Bytes of the regular files under node_modules (symbolic links not followed). */
  readonly installedBytes: number;
  readonly installedFiles: number;
  /** Packages under node_modules, from npm's hidden lockfile (the package itself included). */
  readonly installedPackages: number;
  /** `name@version` of every installed package, sorted. */
  readonly installedPackageList: readonly string[];
  /** Wall time of `npm install` (warm npm cache, --prefer-offline: mostly copying and linking). */
  readonly installMs: number;
}

/** A process timed N times. */
interface Timing {
  readonly label: string;
  readonly command: string;
  /** Spawn to exit, per run. */
  readonly wallMs: readonly number[];
  /** Measured inside the child around the import, per run (import timings only). */
  readonly innerMs?: readonly number[];
  readonly wall: Spread;
  readonly inner?: Spread;
  readonly targetMs?: number;
}

/** A process to time: what to spawn, and how to check (and read) what it printed. */
interface Probe {
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly targetMs?: number;
  /** Throws when the output is not what the command prints; returns the child's own figure, if any. */
  readonly read: (stdout: string) => number | undefined;
}

function parseOptions(argv: readonly string[]): { runs: number } | undefined {
  const { values } = parseArgs({ args: [...argv], strict: true, allowPositionals: false, options: { runs: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return undefined;
  const runs = values.runs === undefined ? DEFAULT_RUNS : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new UsageError(`--runs must be a whole number from 1 to 50 (got ${values.runs})`);
  return { runs };
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * The environment of everything run in a scratch project: nothing that points back into this
 * repository (tsx's loader, the "@fleetgate/source" condition, a data directory).
 */
function scratchEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['NODE_OPTIONS', 'NODE_PATH', 'FLEETGATE_DATA', 'FLEETGATE_CA_PASSPHRASE', 'npm_config_prefix']) delete env[name];
  return env;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** `npm pack` of the three workspaces into `dir`; prepack builds each from its sources. */
async function pack(dir: string): Promise<Map<PackageName, PackEntry>> {
  // --prefix: the workspaces are this repository's, wherever the benchmark was started from.
  const args = ['pack', '--prefix', REPO_ROOT, '--json', '--pack-destination', dir, ...PACKAGES.flatMap((entry) => ['-w', entry.workspace])];
  const { stdout } = await execCommand('npm', args, { timeoutMs: PACK_TIMEOUT_MS, env: scratchEnv() });
  // prepack's own output goes to stderr with --json, but be lenient about anything before the array.
  const entries = JSON.parse(stdout.slice(stdout.indexOf('['))) as PackEntry[];
  const packed = new Map<PackageName, PackEntry>();
  for (const { name } of PACKAGES) {
    const entry = entries.find((candidate) => candidate.name === name);
    if (!entry) throw new Error(`npm pack did not report ${name}`);
    packed.set(name, entry);
  }
  return packed;
}

/** Bytes and count of the regular files under `dir`, symbolic links not followed (npm links bins). */
async function filesUnder(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    bytes += (await lstat(join(entry.parentPath, entry.name))).size;
    files++;
  }
  return { bytes, files };
}

/** The packages of an install, from npm's hidden lockfile (node_modules/.package-lock.json). */
async function installedPackages(project: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(project, 'node_modules', '.package-lock.json'), 'utf8')) as { packages?: Record<string, { version?: string }> };
  return Object.entries(lock.packages ?? {})
    .filter(([path]) => path.startsWith('node_modules/'))
    .map(([path, info]) => `${path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${info.version ?? '?'}`)
    .sort();
}

/** A fresh project with `tarballs` installed, in a temp directory outside the repository. */
async function installScratch(label: string, tarballs: readonly string[]): Promise<{ dir: string; installMs: number }> {
  const dir = await makeTempDir('bench');
  const outside = relative(REPO_ROOT, dir);
  if (!outside.startsWith(`..${sep}`)) throw new Error(`temp directory ${dir} is inside the repository: set TMPDIR elsewhere`);
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name: `scratch-${label}`, private: true, version: '1.0.0' }, null, 2)}\n`);
  const started = performance.now();
  // --prefix DIR is `cd DIR && npm install` (execCommand has no cwd).
  await execCommand('npm', ['install', '--prefix', dir, '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], { timeoutMs: INSTALL_TIMEOUT_MS, env: scratchEnv() });
  return { dir, installMs: performance.now() - started };
}

/** Runs a probe once: wall time from spawn to exit by the monotonic clock, and its stdout. */
function runOnce(probe: Probe): Promise<{ wallMs: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(probe.file, [...probe.args], { cwd: probe.cwd, env: scratchEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL' });
    trackChild(child);
    let exitedAt = Number.NaN;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('exit', () => (exitedAt = performance.now()));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${probe.label} exited ${String(code ?? signal)}: ${stderr.trim().split('\n').slice(-5).join('\n')}`));
        return;
      }
      resolve({ wallMs: exitedAt - started, stdout });
    });
  });
}

/** A child that prints how long the import took, measured around it with performance.now(). */
const IMPORT_ESM = `const started = performance.now();
const sdk = await import('@fleetgate/device-sdk');
const ms = performance.now() - started;
if (typeof sdk.FleetDevice !== 'function') throw new Error('no FleetDevice export');
process.stdout.write(String(ms));
`;
const REQUIRE_CJS = `const started = performance.now();
const sdk = require('@fleetgate/device-sdk');
const ms = performance.now() - started;
if (typeof sdk.FleetDevice !== 'function') throw new Error('no FleetDevice export');
process.stdout.write(String(ms));
`;

function childFigure(stdout: string): number {
  const ms = Number(stdout.trim());
  if (!Number.isFinite(ms)) throw new Error(`the import child printed ${JSON.stringify(stdout.slice(0, 200))}`);
  return ms;
}

function expectOutput(pattern: RegExp, label: string): (stdout: string) => undefined {
  return (stdout) => {
    if (!pattern.test(stdout)) throw new Error(`${label} printed ${JSON.stringify(stdout.slice(0, 200))}`);
    return undefined;
  };
}

/**
 * Times every probe `runs` times, after one untimed run each (page cache), in rounds: round i
 * runs each probe once, so load that comes and goes on a shared machine lands on all of them.
 */
async function timeProbes(probes: readonly Probe[], runs: number): Promise<Timing[]> {
  for (const probe of probes) await runOnce(probe).then(({ stdout }) => probe.read(stdout));
  const wall = probes.map((): number[] => []);
  const inner = probes.map((): number[] => []);
  for (let round = 0; round < runs; round++) {
    for (const [index, probe] of probes.entries()) {
      const { wallMs, stdout } = await runOnce(probe);
      wall[index]?.push(wallMs);
      const figure = probe.read(stdout);
      if (figure !== undefined) inner[index]?.push(figure);
    }
    progress(`round ${round + 1}/${runs} done`);
  }
  return probes.map((probe, index) => {
    const wallMs = wall[index] ?? [];
    const innerMs = inner[index] ?? [];
    const command = [relative(probe.cwd, probe.file) || probe.file, ...probe.args].join(' ');
    return {
      label: probe.label,
      command,
      wallMs,
      wall: spread(wallMs),
      ...(innerMs.length > 0 ? { innerMs, inner: spread(innerMs) } : {}),
      ...(probe.targetMs === undefined ? {} : { targetMs: probe.targetMs }),
    };
  });
}

const KiB = 1024;
const MiB = 1024 * 1024;
const size = (bytes: number): string => (bytes >= MiB ? `${(bytes / MiB).toFixed(2)} MiB` : `${(bytes / KiB).toFixed(1)} KiB`);
const ms = (value: number): string => value.toFixed(value < 10 ? 2 : 1);
const spreadText = (value: Spread): string => `${ms(value.median)} (${ms(value.min)}-${ms(value.max)})`;

function sizeTable(figures: readonly PackageFigures[]): string {
  return renderTable(
    ['package', 'packed', 'unpacked (files)', 'installed alone (files)', 'packages', 'npm install'],
    figures.map((figure) => [
      figure.name,
      size(figure.packedBytes),
      `${size(figure.unpackedBytes)} (${figure.files})`,
      `${size(figure.installedBytes)} (${figure.installedFiles})`,
      String(figure.installedPackages),
      `${(figure.installMs / 1000).toFixed(1)} s`,
    ]),
  );
}

function timingTable(timings: readonly Timing[], floor: Spread): string {
  return renderTable(
    ['process', 'wall ms: median (min-max)', 'over node -e 0', 'in-process ms', 'target', 'ok?'],
    timings.map((timing) => [
      timing.label,
      spreadText(timing.wall),
      timing.label === 'node -e 0' ? '-' : `+${ms(timing.wall.median - floor.median)}`,
      timing.inner ? spreadText(timing.inner) : '-',
      timing.targetMs === undefined ? '-' : `<= ${timing.targetMs}`,
      timing.targetMs === undefined ? '' : timing.wall.median <= timing.targetMs ? 'yes' : 'no',
    ]),
  );
}

async function main(runs: number): Promise<number> {
  const swept = await sweepStaleTempDirs();
  if (swept > 0) progress(`removed ${swept} temp director${swept === 1 ? 'y' : 'ies'} left by killed benchmark runs`);
  const startedAt = new Date();
  const loadBefore = loadavg()[0] ?? Number.NaN;
  const machine = await describeMachine();
  progress(`${machine.nproc} CPUs, node ${machine.node}, 1-minute load average ${loadBefore.toFixed(2)}`);

  const packDir = await makeTempDir('bench');
  progress('npm pack: device-sdk, server, simulator (prepack builds each)');
  const packed = await pack(packDir);
  const tarballOf = (name: PackageName): string => join(packDir, packed.get(name)?.filename ?? '');

  const figures: PackageFigures[] = [];
  const projects = new Map<PackageName, string>();
  for (const entry of PACKAGES) {
    progress(`npm install ${entry.name} into a fresh project${entry.installWith.length > 0 ? ` (with ${entry.installWith.join(', ')})` : ''}`);
    const tarballs = [entry.name, ...entry.installWith].map(tarballOf);
    const { dir, installMs } = await installScratch(entry.workspace, tarballs);
    projects.set(entry.name, dir);
    const installed = await filesUnder(join(dir, 'node_modules'));
    const list = await installedPackages(dir);
    const pack = packed.get(entry.name);
    if (!pack) throw new Error(`no tarball for ${entry.name}`);
    figures.push({
      name: entry.name,
      tarball: pack.filename,
      packedBytes: pack.size,
      unpackedBytes: pack.unpackedSize,
      files: pack.entryCount,
      installedBytes: installed.bytes,
      installedFiles: installed.files,
      installedPackages: list.length,
      installedPackageList: list,
      installMs,
    });
    progress(`${entry.name}: ${size(installed.bytes)} in ${list.length} packages, npm install ${(installMs / 1000).toFixed(1)} s`);
  }

  const sdkDir = projects.get('@fleetgate/device-sdk') ?? '';
  const serverDir = projects.get('@fleetgate/server') ?? '';
  const simDir = projects.get('@fleetgate/simulator') ?? '';
  await writeFile(join(sdkDir, 'import-esm.mjs'), IMPORT_ESM);
  await writeFile(join(sdkDir, 'require-cjs.cjs'), REQUIRE_CJS);
  const node = process.execPath;
  const fleetgate = join(serverDir, 'node_modules', '.bin', 'fleetgate');
  const probes: Probe[] = [
    { label: 'node -e 0', file: node, args: ['-e', '0'], cwd: sdkDir, read: () => undefined },
    { label: "SDK: import('@fleetgate/device-sdk')", file: node, args: ['import-esm.mjs'], cwd: sdkDir, read: childFigure },
    { label: "SDK: require('@fleetgate/device-sdk')", file: node, args: ['require-cjs.cjs'], cwd: sdkDir, read: childFigure },
    { label: 'fleetgate --help', file: fleetgate, args: ['--help'], cwd: serverDir, targetMs: HELP_TARGET_MS, read: expectOutput(/^Usage: fleetgate /, 'fleetgate --help') },
    { label: 'fleetgate device list --help', file: fleetgate, args: ['device', 'list', '--help'], cwd: serverDir, read: expectOutput(/device list/, 'fleetgate device list --help') },
    { label: 'fleetgate-sim --help', file: join(simDir, 'node_modules', '.bin', 'fleetgate-sim'), args: ['--help'], cwd: simDir, read: expectOutput(/fleetgate-sim/, 'fleetgate-sim --help') },
  ];
  progress(`timing ${probes.length} processes, ${runs} runs each after one untimed run`);
  const timings = await timeProbes(probes, runs);
  const floor = timings[0]?.wall ?? spread([]);

  for (const dir of [packDir, ...projects.values()]) await removeTempDir(dir);
  const loadAfter = loadavg()[0] ?? Number.NaN;

  process.stdout.write(`\n${sizeTable(figures)}\n\n${timingTable(timings, floor)}\n`);
  process.stdout.write(`\nwall: spawn to exit, ${runs} runs; in-process: performance.now() around the import in the child\n`);
  process.stdout.write(`1-minute load average: ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (${machine.nproc} CPUs)\n`);

  await mkdir(RESULTS_DIR, { recursive: true });
  const json = `${JSON.stringify({ benchmark: 'packages', startedAt: startedAt.toISOString(), machine, runs, loadAverage1m: { before: loadBefore, after: loadAfter }, tmpdir: tmpdir(), packages: figures, timings }, null, 2)}\n`;
  const path = join(RESULTS_DIR, `packages-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(path, json);
  await writeFile(join(RESULTS_DIR, 'latest-packages.json'), json);
  progress(`results: ${path} (and bench/results/latest-packages.json)`);
  return 0;
}

installCleanupHandlers();
let options: { runs: number } | undefined;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`);
  process.exit(2);
}
if (!options) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
try {
  process.exitCode = await main(options.runs);
} catch (error) {
  if (interruption()) {
    process.exitCode = 130;
  } else {
    process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
