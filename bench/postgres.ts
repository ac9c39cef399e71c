import { execFile } from 'node:child_process';
import { chown, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startDaemon, type Daemon } from './daemon.ts';
import { freePort } from './free-port.ts';
import { asUser } from './orphan-guard.ts';
import { waitUntilReady } from './wait-ready.ts';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL server: `initdb` into a directory of its own, `postgres` on a free
 * loopback port, stopped and deleted at the end. Shared by the benchmark and the tests
 * (test/helpers/postgres.ts). Debian's `postgresql` package provides the binaries.
 *
 * `postgres` runs as a child of this process, not daemonized by `pg_ctl`: its pid is the
 * postmaster's, it is registered with the benchmark's cleanup (bench/cleanup.ts) and started
 * under `setpriv --pdeathsig QUIT`, so the kernel shuts it down at once if this process dies
 * without cleaning up. `initdb` and `postgres` refuse to run as root, so as root they run as the
 * `postgres` user (setpriv, which execs in place) in a directory that user owns.
 */
export interface PostgresServer {
  readonly port: number;
  /** The cluster's data directory (`postmaster.pid` is in it). */
  readonly dataDir: string;
  /** A URL of the `postgres` database (for creating others). */
  readonly adminUrl: string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(): Promise<string>;
  /** The postmaster's pid, from `postmaster.pid` in the data directory (its processes are its children). */
  postmasterPid(): Promise<number>;
  /** Stops the server at once (immediate shutdown, as a crash would leave it). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

/** Where and how to run a throwaway server. */
export interface PostgresOptions {
  /** An empty directory for the server alone; given to the `postgres` user when running as root, deleted by destroy(). */
  readonly dir: string;
  /** Server settings beyond PostgreSQL's defaults (`-c name=value`); none by default. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Run the server on this CPU only (`taskset -c`), as the benchmark pins the servers it measures. */
  readonly cpu?: number;
  /** Prefix of the databases createDatabase() makes (unique per call). */
  readonly databasePrefix?: string;
}

/** How long the server may take to accept connections (crash recovery after an immediate stop included). */
const READY_TIMEOUT_MS = 60_000;

/** How long initdb may take. */
const INITDB_TIMEOUT_MS = 120_000;

/** The newest PostgreSQL binaries on the machine (FLEETGATE_PG_BIN overrides). */
async function binDir(): Promise<string> {
  if (process.env.FLEETGATE_PG_BIN) return process.env.FLEETGATE_PG_BIN;
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  const newest = versions.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql (see README)');
  return join('/usr/lib/postgresql', newest, 'bin');
}

const POSTGRES_USER = 'postgres';

/** Whether initdb and postgres must run as the postgres user. */
function asRoot(): boolean {
  return process.getuid?.() === 0;
}

let databases = 0;

/** initdb, then the server; resolves once it accepts connections on 127.0.0.1. */
export async function startPostgres(options: PostgresOptions): Promise<PostgresServer> {
  const bin = await binDir();
  const { dir } = options;
  if (asRoot()) {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', POSTGRES_USER]), run('id', ['-g', POSTGRES_USER])]);
    await chown(dir, Number(uid.trim()), Number(gid.trim()));
  }
  const dataDir = join(dir, 'data');
  // --no-sync: initdb's own files are not flushed (a throwaway cluster); the server's durability
  // settings are PostgreSQL's defaults (fsync, synchronous_commit on) unless `settings` says otherwise.
  const initdb = [join(bin, 'initdb'), '-D', dataDir, '-U', 'fleetgate', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'];
  const [file, ...args] = asRoot() ? ['setpriv', ...asUser(POSTGRES_USER), ...initdb] : initdb;
  await run(file as string, args, { timeout: INITDB_TIMEOUT_MS });

  const port = await freePort();
  const settings = { listen_addresses: '127.0.0.1', ...options.settings };
  const serverArgs = ['-D', dataDir, '-p', String(port), '-k', dir, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
  const adminUrl = `postgres://fleetgate@127.0.0.1:${port}/postgres`;
  const pinned = options.cpu === undefined ? [join(bin, 'postgres'), ...serverArgs] : ['taskset', '-c', String(options.cpu), join(bin, 'postgres'), ...serverArgs];
  let daemon: Daemon | undefined;

  const start = async (): Promise<void> => {
    const [command, ...rest] = pinned;
    const started = startDaemon('postgres', command as string, rest, process.env, {
      signal: 'QUIT',
      stopSignal: 'SIGQUIT',
      user: asRoot() ? POSTGRES_USER : undefined,
    });
    daemon = started;
    try {
      await waitUntilReady(started, () => ping(adminUrl), READY_TIMEOUT_MS);
    } catch (error) {
      await started.stop();
      throw error;
    }
  };
  const stop = async (): Promise<void> => {
    await daemon?.stop();
    daemon = undefined;
  };
  await start();

  const prefix = options.databasePrefix ?? `fleetgate_${process.pid}`;
  return {
    port,
    dataDir,
    adminUrl,
    async createDatabase() {
      const name = `${prefix}_${++databases}`;
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://fleetgate@127.0.0.1:${port}/${name}`;
    },
    postmasterPid: () => readPostmasterPid(dataDir),
    stop,
    start,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The first line of `postmaster.pid`: the pid of the server's main process. */
async function readPostmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pid in ${dataDir}/postmaster.pid`);
  return pid;
}

/** undefined once the server answers a query; else why not. */
async function ping(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}
