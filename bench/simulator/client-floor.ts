import { connect, createSecureContext, type SecureContext } from 'node:tls';
import { SoftwareKeyProvider, createCsr } from '@fleetgate/device-sdk';
import { checkServerNameOnLeaf } from '../../device-sdk/src/server-identity.ts';
import type { FactoryCredential } from '../../simulator/src/credentials.ts';
import { startNodeFloorServer } from '../node-floor.ts';
import type { Pinning } from '../pinning.ts';

/** CPU the simulator's process spends per device on the work no client of this lifecycle can skip. */
export interface ClientFloor {
  /** tls.createSecureContext with the pinned root, the leaf and the key (one per credential: bootstrap and operational). */
  readonly contextMs: number;
  /** One mutual-TLS handshake with a context made beforehand, client side (Node's server name check on the leaf included). */
  readonly handshakeMs: number;
  /** A P-256 key pair (WebCrypto, exported as PKCS#8 PEM for TLS) and its signed CSR. */
  readonly keyAndCsrMs: number;
  /** The lifecycle's floor: 2 contexts + 2 handshakes (EST and MQTT) + a key and a CSR. */
  readonly perDeviceMs: number;
  readonly handshakes: number;
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};
const leafOf = (chainPem: string): string => /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(chainPem)?.[0] ?? chainPem;

/** Handshakes `contexts` against the floor server, `concurrency` at a time; resolves when every one finished. */
async function handshakeAll(port: number, contexts: readonly SecureContext[], concurrency: number): Promise<number> {
  let next = 0;
  let failed = 0;
  const one = (context: SecureContext): Promise<void> =>
    new Promise((resolve) => {
      // As the SDK connects: by address, the pinned root in the context, no session reuse.
      const socket = connect({ host: '127.0.0.1', port, secureContext: context }, () => {
        socket.destroy();
        resolve();
      });
      // And as the SDK checks the server's name, with its own helper: Node's default check, given
      // the leaf. Converting the whole chain, which the check does not read, is not part of the
      // floor (about 0.9 ms per handshake).
      checkServerNameOnLeaf(socket);
      socket.setNoDelay(true);
      socket.on('error', () => {
        failed++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < contexts.length) await one(contexts[next++] as SecureContext);
    }),
  );
  return failed;
}

/**
 * The client-side floor of the simulator's per-device CPU, measured in this process (pinned like
 * the simulator) against bench/node-floor-server.ts (a bare Node https server with the EST
 * listener's TLS settings, pinned like the server): what no client of this lifecycle avoids
 * with OpenSSL 3 and Node's TLS. The simulator's figure minus this is the SDK's and the
 * simulator's own work (HTTP, MQTT, events, timers, garbage collection).
 */
export async function measureClientFloor(options: { readonly dataDir: string; readonly rootPem: string; readonly credentials: readonly FactoryCredential[]; readonly pinning: Pinning }): Promise<ClientFloor> {
  const { daemon, target } = await startNodeFloorServer(options);
  const { port } = target;
  try {
    const credentials = options.credentials;
    const make = (): SecureContext[] => credentials.map((credential) => createSecureContext({ ca: options.rootPem, cert: leafOf(credential.certPem), key: credential.keyPem }));
    await handshakeAll(port, make().slice(0, 50), 16); // warm-up
    const contextStart = process.cpuUsage();
    const contexts = make();
    const contextMs = cpuMs(contextStart) / contexts.length;
    const handshakeStart = process.cpuUsage();
    const failed = await handshakeAll(port, contexts, 16);
    if (failed > 0) throw new Error(`${failed} of ${contexts.length} floor handshakes failed`);
    const handshakeMs = cpuMs(handshakeStart) / contexts.length;
    const keys = new SoftwareKeyProvider();
    const count = Math.min(1000, credentials.length);
    const keyStart = process.cpuUsage();
    for (let index = 0; index < count; index++) await createCsr(`floor-${index}`, await keys.generate());
    const keyAndCsrMs = cpuMs(keyStart) / count;
    const round = (value: number): number => Math.round(value * 100) / 100;
    return { contextMs: round(contextMs), handshakeMs: round(handshakeMs), keyAndCsrMs: round(keyAndCsrMs), perDeviceMs: round(2 * contextMs + 2 * handshakeMs + keyAndCsrMs), handshakes: contexts.length };
  } finally {
    await daemon.stop();
  }
}
