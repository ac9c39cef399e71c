import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

/** A simulated device's credential: a factory bootstrap one, or (MQTT-only runs) an operational one. */
export interface FactoryCredential {
  readonly id: string;
  readonly model: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** `operational`: connect straight to the broker with it, no enrollment (any mTLS broker). */
  readonly kind?: 'bootstrap' | 'operational';
}

/** The factory output: root to pin and one credential per device. */
export interface FactoryBatch {
  readonly rootPem: string;
  readonly devices: FactoryCredential[];
}

interface ManifestFile {
  readonly kind?: 'bootstrap' | 'operational';
  readonly devices: readonly { readonly id: string; readonly model: string }[];
}

/** Reads a `fleetgate bootstrap issue` output folder (manifest.json, <id>.crt/.key, root.crt). */
export async function readFactory(dir: string, limit = Number.POSITIVE_INFINITY): Promise<FactoryBatch> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ManifestFile;
  const entries = manifest.devices.slice(0, limit);
  const kind = manifest.kind ?? 'bootstrap';
  const devices = await Promise.all(
    entries.map(async ({ id, model }) => ({
      id,
      model,
      kind,
      certPem: await readFile(join(dir, `${id}.crt`), 'utf8'),
      keyPem: await readFile(join(dir, `${id}.key`), 'utf8'),
    })),
  );
  return { rootPem: await readFile(join(dir, 'root.crt'), 'utf8'), devices };
}

/**
 * Writes the operational credentials of a run in the factory folder format (kind
 * `operational`), so a later `--credentials DIR` run can drive the connect and publish phases
 * against any mTLS MQTT broker that trusts the same root (mosquitto, for a side-by-side run).
 */
export async function exportCredentials(dir: string, rootPem: string, credentials: readonly FactoryCredential[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'root.crt'), rootPem);
  for (const credential of credentials) {
    await writeFile(join(dir, `${credential.id}.crt`), credential.certPem);
    await writeFile(join(dir, `${credential.id}.key`), credential.keyPem, { mode: 0o600 });
  }
  const manifest = { format: 'fleetgate-sim-credentials/1', kind: 'operational', devices: credentials.map(({ id, model }) => ({ id, model })) };
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/**
 * Mints factory credentials from a data directory's factory CA by running `fleetgate bootstrap
 * issue`, as a factory line would: the simulator uses the product's own tool, not its insides.
 * The child gets this process's Node options, as `fork` would: run from the sources (tsx and the
 * "@fleetgate/source" condition), the command runs from the sources too.
 */
export async function mintFactory(dataDir: string, outDir: string, counts: Readonly<Record<string, number>>, onProgress?: (line: string) => void): Promise<void> {
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve('@fleetgate/server/package.json')), 'bin', 'fleetgate.js');
  for (const [model, count] of Object.entries(counts)) {
    if (count <= 0) continue;
    onProgress?.(`minting ${count} ${model} bootstrap credentials`);
    await promisify(execFile)(process.execPath, [...process.execArgv, bin, 'bootstrap', 'issue', '--data', dataDir, '--model', model, '--count', String(count), '--out', outDir, '--json'], { maxBuffer: 256 * 1024 * 1024 });
  }
}
