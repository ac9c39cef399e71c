import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { createCsr, generateDeviceKeyPair } from '@fleetgate/device-sdk';
import type { BootstrapCredentialFiles } from './fleetgate-cli.ts';

/** Everything one simulated device sends, built before the clock starts. */
export interface BenchDevice {
  readonly id: string;
  /** Bootstrap certificate + key and the pinned root, parsed once. */
  readonly secureContext: SecureContext;
  /** The EST request body: base64 of the DER PKCS#10 (RFC 7030 §4.2.1). */
  readonly body: Buffer;
}

/**
 * Builds each device's TLS context and CSR up front. Both are expensive for the load generator
 * (a secure context ~1 ms, a CSR with a fresh P-256 key ~2 ms) and would otherwise compete with
 * the server for CPU inside the timed phase. The CSR comes from the device SDK, as on a device.
 */
export async function prepareDevices(
  credentials: readonly BootstrapCredentialFiles[],
  rootPem: string,
  onProgress?: (done: number, total: number) => void,
): Promise<BenchDevice[]> {
  const devices: BenchDevice[] = [];
  for (const credential of credentials) {
    const [cert, key] = await Promise.all([readFile(credential.certPath, 'utf8'), readFile(credential.keyPath, 'utf8')]);
    const secureContext = createSecureContext({ ca: rootPem, cert, key });
    // Non-extractable, as on a device: the key only ever signs this CSR.
    const csr = await createCsr(credential.id, await generateDeviceKeyPair(false));
    devices.push({ id: credential.id, secureContext, body: Buffer.from(`${Buffer.from(csr).toString('base64')}\n`, 'latin1') });
    onProgress?.(devices.length, credentials.length);
  }
  return devices;
}
