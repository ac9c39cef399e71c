import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './run.ts';

/** Key types the tests ask openssl for. */
export type OpensslKey = 'ec-p256' | 'ec-p384' | 'rsa-1024' | 'rsa-2048' | 'ed25519';

const GENPKEY_ARGS: Record<OpensslKey, string[]> = {
  'ec-p256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'rsa-1024': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  'rsa-2048': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  ed25519: ['-algorithm', 'ED25519'],
};

async function checked(args: string[]): Promise<string> {
  const result = await run('openssl', args);
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** Makes a private key file with openssl; returns its path. */
export async function opensslKey(dir: string, name: string, key: OpensslKey = 'ec-p256'): Promise<string> {
  const path = join(dir, `${name}.key`);
  await checked(['genpkey', ...GENPKEY_ARGS[key], '-out', path]);
  return path;
}

/**
 * Makes a DER CSR with `openssl req`: a real third-party encoder, used to ask for things the SDK
 * never would (extra extensions, other key types).
 */
export async function opensslCsr(dir: string, options: { subject: string; key?: OpensslKey; keyPath?: string; addext?: readonly string[]; name?: string }): Promise<{ der: Buffer; keyPath: string }> {
  const name = options.name ?? `csr-${Math.random().toString(16).slice(2)}`;
  const keyPath = options.keyPath ?? (await opensslKey(dir, name, options.key));
  const out = join(dir, `${name}.csr.der`);
  const args = ['req', '-new', '-key', keyPath, '-subj', options.subject, '-outform', 'DER', '-out', out];
  if (!(options.key ?? 'ec-p256').startsWith('ed')) args.push('-sha256');
  for (const extension of options.addext ?? []) args.push('-addext', extension);
  await checked(args);
  return { der: await readFile(out), keyPath };
}
