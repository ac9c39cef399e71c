import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

/** A simulated device's factory credential. */
export interface FactoryCredential {
  readonly id: string;
  readonly model: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** The factory output: root to pin and one credential per device. */
export interface FactoryBatch {
  readonly rootPem: string;
  readonly devices: FactoryCredential[];
}

interface ManifestFile {
  readonly devices: readonly { readonly id: string; readonly model: string }[];
}

/** Reads a `fleetgate bootstrap issue` output folder (manifest.json, <id>.crt/.key, root.crt). */
export async function readFactory(dir: string, limit = Number.POSITIVE_INFINITY): Promise<FactoryBatch> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ManifestFile;
  const entries = manifest.devices.slice(0, limit);
  const devices = await Promise.all(
    entries.map(async ({ id, model }) => ({
      id,
      model,
      certPem: await readFile(join(dir, `${id}.crt`), 'utf8'),
      keyPem: await readFile(join(dir, `${id}.key`), 'utf8'),
    })),
  );
  return { rootPem: await readFile(join(dir, 'root.crt'), 'utf8'), devices };
}

/**
 * Mints factory credentials from a data directory's factory CA by running `fleetgate bootstrap
 * issue`, as a factory line would: the simulator uses the product's own tool, not its insides.
 */
export async function mintFactory(dataDir: string, outDir: string, counts: Readonly<Record<string, number>>, onProgress?: (line: string) => void): Promise<void> {
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve('@fleetgate/server/package.json')), 'bin', 'fleetgate.js');
  for (const [model, count] of Object.entries(counts)) {
    if (count <= 0) continue;
    onProgress?.(`minting ${count} ${model} bootstrap credentials`);
    await promisify(execFile)(process.execPath, [bin, 'bootstrap', 'issue', '--data', dataDir, '--model', model, '--count', String(count), '--out', outDir, '--json'], { maxBuffer: 256 * 1024 * 1024 });
  }
}
