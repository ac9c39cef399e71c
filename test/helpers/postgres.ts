import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.ts';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL server of this test process: `initdb` into a temp directory, `postgres`
 * on a free loopback port, stopped and deleted at the end. Debian's `postgresql` package provides
 * the binaries (`.ci/run` installs it). `initdb` and `postgres` refuse to run as root, so as root
 * they run as the `postgres` user in a directory it owns.
 */
export interface PostgresServer {
  readonly port: number;
  /** A URL of the `postgres` database (for creating others). */
  readonly adminUrl: string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server at once (an outage, as a crash would cause). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it and deletes everything. */
  destroy(): Promise<void>;
}

/** The newest PostgreSQL binaries on the machine (FLEETGATE_PG_BIN overrides). */
async function binDir(): Promise<string> {
  if (process.env.FLEETGATE_PG_BIN) return process.env.FLEETGATE_PG_BIN;
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  const newest = versions.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql (see README)');
  return join('/usr/lib/postgresql', newest, 'bin');
}

let databases = 0;

/** Starts a PostgreSQL server of its own for this test process. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = await binDir();
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-pg-'));
  const asRoot = process.getuid?.() === 0;
  const exec = async (command: string, args: string[]): Promise<void> => {
    const path = join(bin, command);
    await (asRoot ? run('runuser', ['-u', 'postgres', '--', path, ...args]) : run(path, args));
  };
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  await exec('initdb', ['-D', data, '-U', 'fleetgate', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=32MB`;
  const start = (): Promise<void> => exec('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  const stop = (): Promise<void> => exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
  await start();
  const adminUrl = `postgres://fleetgate@127.0.0.1:${port}/postgres`;
  let running = true;
  return {
    port,
    adminUrl,
    async createDatabase() {
      const name = `fleetgate_${process.pid}_${++databases}`;
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://fleetgate@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      await stop();
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async destroy() {
      if (running) await stop().catch(() => undefined);
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<PostgresServer> | undefined;

/**
 * One server for every test of this process (a test file), started on first use. The file
 * registers `test.after.always(stopSharedPostgres)`.
 */
export function sharedPostgres(): Promise<PostgresServer> {
  shared ??= startPostgres();
  return shared;
}

/** Stops and deletes the shared server, if one was started. */
export async function stopSharedPostgres(): Promise<void> {
  if (!shared) return;
  const server = await shared.catch(() => undefined);
  shared = undefined;
  await server?.destroy();
}
