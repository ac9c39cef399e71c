import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCsr, EstClient, SdkError, SoftwareKeyProvider } from '@fleetgate/device-sdk';
import type { BootstrapCredentialFiles } from '../fleetgate-cli.ts';
import { runClosedLoop } from '../load.ts';

/** An operational credential, as a device holds it after enrolling: chain and key as PEM. */
export interface OperationalCredential {
  readonly id: string;
  /** Leaf, then the issuing CA. */
  readonly chainPem: string;
  readonly keyPem: string;
}

/** Retries of one enrollment answered 429/503 (the EST rate limits), with a short pause. */
const MAX_ATTEMPTS = 5;

async function enrollOne(est: EstClient, keys: SoftwareKeyProvider, credential: BootstrapCredentialFiles): Promise<OperationalCredential> {
  const [cert, key] = await Promise.all([readFile(credential.certPath, 'utf8'), readFile(credential.keyPath, 'utf8')]);
  // The device's own key and CSR, made by the device SDK as firmware does.
  const deviceKey = await keys.generate();
  const csr = await createCsr(credential.id, deviceKey);
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await est.simpleEnroll({ cert, key }, csr, deviceKey.spki);
      return { id: credential.id, chainPem: result.chainPem, keyPem: deviceKey.stored };
    } catch (error) {
      if (!(error instanceof SdkError) || error.code !== 'SDK_ENROLL_UNAVAILABLE' || attempt >= MAX_ATTEMPTS) throw error;
      await sleep(200 * attempt);
    }
  }
}

/**
 * Enrolls every bootstrap credential over EST (`simpleenroll` with a CSR from the device SDK's
 * `createCsr`), the real path a device takes before it may connect to the broker. Not timed:
 * this only makes the operational certificates both brokers are then measured with. Any
 * failure stops the benchmark, with the first reason.
 */
export async function enrollDevices(options: {
  readonly estUrl: string;
  readonly rootPem: string;
  readonly credentials: readonly BootstrapCredentialFiles[];
  readonly concurrency: number;
  readonly onProgress?: (done: number, total: number) => void;
}): Promise<OperationalCredential[]> {
  const est = new EstClient({ url: options.estUrl, root: options.rootPem, timeoutMs: 60_000 });
  const keys = new SoftwareKeyProvider();
  const phase = await runClosedLoop(
    options.credentials,
    options.concurrency,
    (credential) => enrollOne(est, keys, credential).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    options.onProgress,
  );
  const failed = phase.results.filter((result): result is Error => result instanceof Error);
  if (failed.length > 0) throw new Error(`${failed.length} of ${options.credentials.length} enrollments failed; first: ${failed[0]?.message ?? ''}`);
  return phase.results as OperationalCredential[];
}
