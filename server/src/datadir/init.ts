import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { access, mkdir, readFile } from 'node:fs/promises';
import { loadAuthority, createRootCertificate, issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import type { GeneralName } from '../pki/extensions.ts';
import { generateKeyPair, privateKeyToPem, readPrivateKey, spkiDer, writeSecretFileExclusive } from '../pki/keys.ts';
import { OID } from '../pki/oids.ts';
import { fromPem, toPem } from '../pki/pem.ts';
import { KeyObjectSigner } from '../pki/signer.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { DEFAULT_CONFIG } from '../config/config.ts';
import { withoutPassword } from '../registry/registry-url.ts';
import { dataLayout, type AuthorityName, type DataLayout } from './layout.ts';
import { ensureTicketSecret } from '../tls/ticket-keys.ts';
import { createHash } from 'node:crypto';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** What `fleetgate init` did to each file. */
export interface InitReport {
  readonly dataDir: string;
  readonly created: string[];
  readonly existing: string[];
  readonly updated: string[];
}

export interface InitOptions {
  readonly dataDir: string;
  /** Extra DNS names or IP addresses for the server certificate. */
  readonly hostnames?: readonly string[];
  /** Encrypts the CA keys at rest. */
  readonly passphrase?: string;
  /**
   * A PostgreSQL registry URL to record as `registry.url` in config.json (without its password,
   * which belongs in PGPASSWORD or ~/.pgpass, not in a file of the data directory).
   */
  readonly registryUrl?: string;
  readonly now?: Date;
}

const YEAR_MS = 365 * 86_400_000;
const BACKDATE_MS = 5 * 60_000;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Loads a key if its file exists, else generates one and writes it (never overwriting). */
async function ensureKey(path: string, kind: 'ec-p256' | 'ec-p384', report: InitReport, passphrase?: string): Promise<{ key: KeyObject; fresh: boolean }> {
  if (await exists(path)) {
    report.existing.push(path);
    return { key: await readPrivateKey(path, passphrase), fresh: false };
  }
  const pair = generateKeyPair(kind);
  await writeSecretFileExclusive(path, privateKeyToPem(pair.privateKey, passphrase));
  report.created.push(path);
  return { key: pair.privateKey, fresh: true };
}

/** Whether an existing certificate file holds a certificate for `key`. */
async function certificateMatches(path: string, key: KeyObject): Promise<X509Certificate | undefined> {
  if (!(await exists(path))) return undefined;
  const certificate = new X509Certificate(fromPem(await readFile(path, 'utf8'), 'CERTIFICATE'));
  return certificate.checkPrivateKey(key) ? certificate : undefined;
}

const DNS_NAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i;

/** A server name as a SAN entry; throws for anything that is neither an IP address nor a DNS name. */
function ipOrDns(name: string): GeneralName {
  if (isIP(name)) return { type: 'ip', value: name };
  if (DNS_NAME.test(name) && !/^[\d.]+$/.test(name)) return { type: 'dns', value: name.toLowerCase() };
  throw new InitError(`--hostname ${JSON.stringify(name)} is neither a DNS name nor an IP address`);
}

/** `fleetgate init` was asked for something it cannot make. */
export class InitError extends FleetgateError<OperatorCode<'INIT_INVALID_HOSTNAME'>> {
  override readonly name = 'InitError';
  constructor(message: string, options?: ErrorOptions) {
    super('INIT_INVALID_HOSTNAME', message, options);
  }
}

/**
 * Creates the private CA and the listener/operator credentials in a data directory.
 * Idempotent: existing keys are loaded, never replaced; a missing certificate is re-made from
 * its existing key; the server certificate is re-issued (same key) when new hostnames are asked.
 */
export async function initDataDir(options: InitOptions): Promise<InitReport> {
  const layout = dataLayout(options.dataDir);
  const report: InitReport = { dataDir: options.dataDir, created: [], existing: [], updated: [] };
  // Validate every input before the first file is written: no half-initialised directory.
  const sanEntries = ['localhost', '127.0.0.1', '::1', ...(options.hostnames ?? [])].map(ipOrDns);
  const now = options.now ?? new Date();
  await mkdir(layout.caDir, { recursive: true, mode: 0o700 });
  // Root CA: P-256, self-signed, 20 years. Not P-384: every mTLS handshake verifies the issuing
  // CA's signature by the root, on the server and on the device, and OpenSSL 3.0 verifies P-384
  // about ten times slower than P-256 (~0.7 ms against ~0.07 ms on this class of machine); the
  // root signature alone would double the server's CPU per handshake.
  const rootKey = await ensureKey(layout.authorityKey('root'), 'ec-p256', report, options.passphrase);
  // Derived from the root key, so a root certificate re-made from the same key keeps its name
  // and the intermediates under it still chain.
  const installation = createHash('sha256').update(spkiDer(rootKey.key)).digest('hex').slice(0, 6);
  const rootSigner = new KeyObjectSigner(rootKey.key, createPublicKey(rootKey.key));
  let rootCertificate = await certificateMatches(layout.rootCert, rootKey.key);
  if (rootCertificate) {
    report.existing.push(layout.rootCert);
  } else {
    const der = await createRootCertificate({
      subject: [
        { type: OID.organizationName, value: 'fleetgate' },
        { type: OID.commonName, value: `fleetgate root CA ${installation}` },
      ],
      signer: rootSigner,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + 20 * YEAR_MS),
    });
    await writeFileAtomic(layout.rootCert, toPem('CERTIFICATE', der));
    report.created.push(layout.rootCert);
    rootCertificate = new X509Certificate(der);
  }
  const root = loadAuthority(rootCertificate.raw, rootSigner);

  const issuing = await ensureIntermediate(layout, 'issuing', `fleetgate device issuing CA ${installation}`, root, report, now, options.passphrase);
  await ensureIntermediate(layout, 'factory', `fleetgate factory CA ${installation}`, root, report, now, options.passphrase);

  // Server TLS certificate, issued by the issuing CA; the file holds leaf + issuing CA.
  const names = sanEntries.map((entry) => entry.value);
  const serverKey = await ensureKey(layout.serverKey, 'ec-p256', report);
  const serverCertificate = await certificateMatches(layout.serverCert, serverKey.key);
  const covered =
    serverCertificate &&
    sanEntries.every((entry) => (entry.type === 'ip' ? serverCertificate.checkIP(entry.value) : serverCertificate.checkHost(entry.value)) !== undefined);
  if (covered) {
    report.existing.push(layout.serverCert);
  } else {
    const issued = await issueCertificate(issuing, {
      subject: [
        { type: OID.organizationName, value: 'fleetgate' },
        { type: OID.commonName, value: options.hostnames?.[0] ?? 'localhost' },
      ],
      subjectPublicKeyInfo: spkiDer(serverKey.key),
      profile: { kind: 'tls-server', names: [...new Map(sanEntries.map((entry) => [entry.value, entry])).values()] },
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + 2 * YEAR_MS),
    });
    await writeFileAtomic(layout.serverCert, toPem('CERTIFICATE', issued.der) + toPem('CERTIFICATE', issuing.certificate));
    (serverCertificate ? report.updated : report.created).push(layout.serverCert);
  }

  // The secret TLS session ticket keys are derived from (0600, never replaced: replacing it ends
  // every device's TLS session, which is what an operator does on purpose when it leaks).
  const ticket = await ensureTicketSecret(layout.ticketSecret);
  (ticket.created ? report.created : report.existing).push(layout.ticketSecret);

  // Operator client certificate for the admin API, issued by the issuing CA.
  const operatorKey = await ensureKey(layout.operatorKey, 'ec-p256', report);
  if (await certificateMatches(layout.operatorCert, operatorKey.key)) {
    report.existing.push(layout.operatorCert);
  } else {
    const issued = await issueCertificate(issuing, {
      subject: [
        { type: OID.organizationName, value: 'fleetgate operators' },
        { type: OID.commonName, value: 'operator' },
      ],
      subjectPublicKeyInfo: spkiDer(operatorKey.key),
      profile: { kind: 'operator', operatorName: 'operator' },
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + YEAR_MS),
    });
    await writeFileAtomic(layout.operatorCert, toPem('CERTIFICATE', issued.der) + toPem('CERTIFICATE', issuing.certificate));
    report.created.push(layout.operatorCert);
  }

  const registryUrl = options.registryUrl === undefined ? undefined : withoutPassword(options.registryUrl);
  if (await exists(layout.config)) {
    // An existing file keeps every setting; only the registry URL asked for is written into it.
    const current = JSON.parse(await readFile(layout.config, 'utf8')) as { registry?: { url?: string } };
    if (registryUrl !== undefined && current.registry?.url !== registryUrl) {
      await writeFileAtomic(layout.config, `${JSON.stringify({ ...current, registry: { ...current.registry, url: registryUrl } }, null, 2)}\n`);
      report.updated.push(layout.config);
    } else {
      report.existing.push(layout.config);
    }
  } else {
    const config = registryUrl === undefined ? DEFAULT_CONFIG : { ...DEFAULT_CONFIG, registry: { ...DEFAULT_CONFIG.registry, url: registryUrl } };
    await writeFileAtomic(layout.config, `${JSON.stringify(config, null, 2)}\n`);
    report.created.push(layout.config);
  }
  return report;
}

/** An intermediate CA under the root: P-256, path length 0, 10 years. */
async function ensureIntermediate(
  layout: DataLayout,
  name: AuthorityName,
  commonName: string,
  root: CertificateAuthority,
  report: InitReport,
  now: Date,
  passphrase?: string,
): Promise<CertificateAuthority> {
  const { key } = await ensureKey(layout.authorityKey(name), 'ec-p256', report, passphrase);
  const signer = new KeyObjectSigner(key, createPublicKey(key));
  const existing = await certificateMatches(layout.authorityCert(name), key);
  if (existing) {
    report.existing.push(layout.authorityCert(name));
    return loadAuthority(existing.raw, signer);
  }
  const issued = await issueCertificate(root, {
    subject: [
      { type: OID.organizationName, value: 'fleetgate' },
      { type: OID.commonName, value: commonName },
    ],
    subjectPublicKeyInfo: spkiDer(key),
    profile: { kind: 'intermediate-ca' },
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + 10 * YEAR_MS),
  });
  await writeFileAtomic(layout.authorityCert(name), toPem('CERTIFICATE', issued.der));
  report.created.push(layout.authorityCert(name));
  return loadAuthority(issued.der, signer);
}
