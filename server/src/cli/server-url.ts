import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs-atomic.ts';

/*
 * Where an admin command finds the server: `--server`, else $FLEETGATE_SERVER, else the URL
 * `fleetgate serve` recorded in the data directory (so `--admin-port 0` or a non-default port
 * needs no flag on the same machine), else the default https://127.0.0.1:9443.
 */

/** The file `fleetgate serve` records its admin URL in, under the data directory. */
export function recordedAdminUrlPath(dataDir: string): string {
  return join(dataDir, 'run', 'admin-url');
}

/** Where a server URL came from, for messages. */
export type ServerSource = '--server' | 'FLEETGATE_SERVER' | 'recorded' | 'default';

/**
 * The admin URL a listener address gives to a client: a wildcard address is reached on loopback
 * (the server certificate names 127.0.0.1 and ::1, not 0.0.0.0).
 */
export function clientAdminUrl(adminUrl: string): string {
  const url = new URL(adminUrl);
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.origin;
}

/** Records the admin URL of a running `fleetgate serve`; returns a function that removes it again. */
export async function recordAdminUrl(dataDir: string, adminUrl: string): Promise<() => Promise<void>> {
  const path = recordedAdminUrlPath(dataDir);
  const text = `${clientAdminUrl(adminUrl)}\n`;
  await mkdir(join(dataDir, 'run'), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, text);
  return async () => {
    // Another server may have started on this data directory since (it could not while this one
    // holds the registry lock, but be exact): remove only what this one wrote.
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === text) await rm(path, { force: true });
  };
}

/** The admin URL recorded in the data directory, or undefined when there is none. */
export async function readRecordedAdminUrl(dataDir: string): Promise<string | undefined> {
  const text = await readFile(recordedAdminUrlPath(dataDir), 'utf8').catch(() => undefined);
  const url = text?.trim();
  return url ? url : undefined;
}
