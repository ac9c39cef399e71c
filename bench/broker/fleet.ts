import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { dataFiles, fleetgateBootstrap, fleetgateInit, fleetgateServiceIssue } from '../fleetgate-cli.ts';
import { startFleetgate } from '../fleetgate-serve.ts';
import type { Pinning } from '../pinning.ts';
import { progress } from '../progress.ts';
import { enrollDevices, type OperationalCredential } from './enroll-devices.ts';
import type { ClientIdentity } from './mqtt-connection.ts';

/** The backend service both brokers let subscribe to every device's topics (the overload subscriber). */
export const SERVICE_NAME = 'backend';

/**
 * The client's TLS 1.3 suites in one order for both brokers. fleetgate picks by its own order
 * (AES-128-GCM first), OpenSSL servers like mosquitto by the client's; Node's default client
 * order starts with AES-256-GCM, so without this the two brokers would run different ciphers.
 */
const CLIENT_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** Devices with operational certificates, a backend service, and the files both brokers are configured with. */
export interface BrokerFleet {
  readonly dataDir: string;
  readonly files: ReturnType<typeof dataFiles>;
  /** One identity per enrolled device; its client id is the device id (the certificate's CN). */
  readonly devices: readonly ClientIdentity[];
  /** The backend service, client id `backend:bench`. */
  readonly service: ClientIdentity;
}

/** `fleetgate service issue` for {@link SERVICE_NAME}; returns the chain and key PEM. */
async function issueService(dataDir: string, outDir: string): Promise<{ chainPem: string; keyPem: string }> {
  const files = await fleetgateServiceIssue(dataDir, outDir, SERVICE_NAME);
  const [chainPem, keyPem] = await Promise.all([readFile(files.certPath, 'utf8'), readFile(files.keyPath, 'utf8')]);
  return { chainPem, keyPem };
}

function identity(clientId: string, rootPem: string, credential: { readonly chainPem: string; readonly keyPem: string }): ClientIdentity {
  return { clientId, secureContext: createSecureContext({ ca: rootPem, cert: credential.chainPem, key: credential.keyPem, ciphers: CLIENT_CIPHERS }) };
}

/**
 * The fleet both brokers are measured with, made through fleetgate's real paths: `fleetgate
 * init`, `bootstrap issue`, `service issue`, then every device enrolled over EST against a
 * `fleetgate serve` that is stopped afterwards (it holds the LevelDB registry's lock). Each device's TLS
 * context is built here, once, before anything is timed.
 */
export async function prepareBrokerFleet(dir: string, count: number, pinning: Pinning, options: { readonly registryUrl?: string } = {}): Promise<BrokerFleet> {
  const dataDir = join(dir, 'data');
  const files = dataFiles(dataDir);
  progress(`init ${dataDir}${options.registryUrl === undefined ? '' : ' (registry on PostgreSQL)'}`);
  // With --registry, init records the URL in config.json and every later `serve` uses it.
  await fleetgateInit(dataDir, options);
  progress(`bootstrap issue --count ${count}; service issue --name ${SERVICE_NAME}`);
  const bootstrap = await fleetgateBootstrap(dataDir, join(dir, 'bootstrap'), 'thermostat', count);
  const service = await issueService(dataDir, join(dir, 'service'));
  const rootPem = await readFile(files.rootCert, 'utf8');

  const server = await startFleetgate({ dataDir, rootPem, pinning });
  let credentials: OperationalCredential[];
  try {
    const step = Math.max(1, Math.floor(count / 5));
    credentials = await enrollDevices({
      estUrl: `https://${server.target.host}:${server.target.port}`,
      rootPem,
      credentials: bootstrap,
      concurrency: 32,
      onProgress: (done, total) => {
        if (done % step === 0 || done === total) progress(`enrolled ${done}/${total} devices over EST`);
      },
    });
  } finally {
    await server.daemon.stop();
  }
  progress(`building ${count} client TLS contexts`);
  return {
    dataDir,
    files,
    devices: credentials.map((credential) => identity(credential.id, rootPem, credential)),
    service: identity(`${SERVICE_NAME}:bench`, rootPem, service),
  };
}
