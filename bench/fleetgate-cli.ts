import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execCommand } from './exec.ts';

/**
 * The fleetgate CLI as an operator runs it: `node server/bin/fleetgate.js ...`. The benchmark
 * treats the server as a black box and only uses the CLI and the files it documents.
 */
export const FLEETGATE_BIN = fileURLToPath(new URL('../server/bin/fleetgate.js', import.meta.url));

/** Files of a data directory the benchmark reads (the layout `fleetgate init --help` documents). */
export function dataFiles(dataDir: string) {
  return {
    rootCert: join(dataDir, 'ca', 'root.crt'),
    issuingCert: join(dataDir, 'ca', 'issuing.crt'),
    factoryCert: join(dataDir, 'ca', 'factory.crt'),
    serverCert: join(dataDir, 'tls', 'server.crt'),
    serverKey: join(dataDir, 'tls', 'server.key'),
  } as const;
}

/** `fleetgate init --data DIR`, with `--registry URL` when the registry is to be on PostgreSQL. */
export async function fleetgateInit(dataDir: string, options: { readonly registryUrl?: string } = {}): Promise<void> {
  const registry = options.registryUrl === undefined ? [] : ['--registry', options.registryUrl];
  await execCommand(process.execPath, [FLEETGATE_BIN, 'init', '--data', dataDir, ...registry], { timeoutMs: 60_000 });
}

/** A bootstrap credential written by `fleetgate bootstrap issue`. */
export interface BootstrapCredentialFiles {
  readonly id: string;
  /** `<id>.crt`: the bootstrap certificate followed by the factory CA. */
  readonly certPath: string;
  readonly keyPath: string;
}

/**
 * `fleetgate bootstrap issue --count N --out DIR`; returns the devices of the batch from the
 * manifest the command writes.
 */
export async function fleetgateBootstrap(dataDir: string, outDir: string, model: string, count: number): Promise<BootstrapCredentialFiles[]> {
  // About 2.5 ms per device on the reference machine; generous so only a hang trips it.
  const timeoutMs = 60_000 + count * 20;
  await execCommand(process.execPath, [FLEETGATE_BIN, 'bootstrap', 'issue', '--data', dataDir, '--model', model, '--count', String(count), '--out', outDir, '--json'], {
    timeoutMs,
  });
  const manifest = JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8')) as { devices?: { id?: unknown }[] };
  const ids = (manifest.devices ?? []).map((device) => device.id).filter((id): id is string => typeof id === 'string');
  if (ids.length !== count) throw new Error(`bootstrap issue wrote ${ids.length} devices, expected ${count}`);
  return ids.map((id) => ({ id, certPath: join(outDir, `${id}.crt`), keyPath: join(outDir, `${id}.key`) }));
}

/** A backend service credential written by `fleetgate service issue`. */
export interface ServiceCredentialFiles {
  /** `<name>.crt`: the service certificate followed by the issuing CA. */
  readonly certPath: string;
  readonly keyPath: string;
}

/** `fleetgate service issue --name NAME --out DIR`: an MQTT client certificate for a backend service. */
export async function fleetgateServiceIssue(dataDir: string, outDir: string, name: string): Promise<ServiceCredentialFiles> {
  await execCommand(process.execPath, [FLEETGATE_BIN, 'service', 'issue', '--data', dataDir, '--name', name, '--out', outDir], { timeoutMs: 60_000 });
  return { certPath: join(outDir, `${name}.crt`), keyPath: join(outDir, `${name}.key`) };
}
