/**
 * Interop tests of what fleetgate's CA issues: every certificate of a fresh data directory, a
 * factory bootstrap certificate and an operational certificate from a real enrollment, checked by
 * tools that share no code with our DER encoder: OpenSSL, GnuTLS certtool and pkijs.
 */
import test, { type ExecutionContext } from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { deviceIdentityUri, EST_PATHS } from '../device-sdk/src/protocol.ts';
import { fromPemAll, toPem } from '../server/src/pki/pem.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { opensslCsr } from './helpers/openssl.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

const OIDS = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  commonName: '2.5.4.3',
  organizationalUnitName: '2.5.4.11',
  organizationName: '2.5.4.10',
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
const DIGITAL_SIGNATURE = 0;
const KEY_CERT_SIGN = 5;
const CRL_SIGN = 6;

/** What a certificate must look like, by role. */
type Role =
  | { readonly kind: 'root' }
  | { readonly kind: 'intermediate' }
  | { readonly kind: 'server' }
  | { readonly kind: 'operator' }
  | { readonly kind: 'device'; readonly id: string };

/** One certificate of the installation, with who issued it and when it was made. */
interface Issued {
  readonly name: string;
  readonly der: Buffer;
  readonly role: Role;
  /** Name of the issuing certificate in the same set (itself for the root). */
  readonly issuer: string;
  /** Wall-clock interval in which it was issued. */
  readonly issuedAfter: number;
  readonly issuedBefore: number;
}

/** A fresh installation: data directory, running server, one bootstrap and one operational certificate. */
interface Installation {
  readonly fleet: Fleet;
  readonly device: Credential;
  readonly certificates: ReadonlyMap<string, Issued>;
  /** Scratch directory holding `<name>.pem` (the certificate alone) and `<name>-chain.pem` (up to the root). */
  readonly dir: string;
}

const pemFile = (dir: string, name: string): string => join(dir, `${name}.pem`);
const chainFile = (dir: string, name: string): string => join(dir, `${name}-chain.pem`);

function firstCertificate(pem: string, what: string): Buffer {
  const [der] = fromPemAll(pem, 'CERTIFICATE');
  if (!der) throw new Error(`${what} holds no certificate`);
  return der;
}

/** Enrolls `device` over EST with `csr` (DER); returns the issued leaf. */
async function enroll(t: ExecutionContext, fleet: Fleet, device: Credential, csr: Uint8Array): Promise<Buffer> {
  const response = await estRequest({
    url: fleet.estUrl,
    path: EST_PATHS.simpleenroll,
    body: csrBody(csr),
    ca: fleet.rootPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  t.is(response.status, 200, response.text);
  const [leaf] = certificatesFromCertsOnly(response.text);
  if (!leaf) throw new Error(`enrollment returned no certificate: ${response.status} ${response.text}`);
  return leaf;
}

/**
 * Makes an installation through the shared harness: `initDataDir` (inside startFleet), a bootstrap
 * batch (factoryCredentials) and a real EST enrollment with a CSR from the device SDK.
 */
async function install(t: ExecutionContext): Promise<Installation> {
  const started = Date.now();
  const fleet = await startFleet(t);
  const initialised = Date.now();
  const [device] = await factoryCredentials(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no bootstrap credential');
  const batched = Date.now();
  const keys = await generateDeviceKeyPair();
  const operational = await enroll(t, fleet, device, await createCsr(device.id, keys));
  const enrolled = Date.now();

  const layout = fleet.layout;
  const read = async (path: string): Promise<Buffer> => firstCertificate(await readFile(path, 'utf8'), path);
  const atInit = { issuedAfter: started, issuedBefore: initialised };
  const list: Issued[] = [
    { name: 'root', der: await read(layout.rootCert), role: { kind: 'root' }, issuer: 'root', ...atInit },
    { name: 'issuing', der: await read(layout.authorityCert('issuing')), role: { kind: 'intermediate' }, issuer: 'root', ...atInit },
    { name: 'factory', der: await read(layout.authorityCert('factory')), role: { kind: 'intermediate' }, issuer: 'root', ...atInit },
    { name: 'server', der: await read(layout.serverCert), role: { kind: 'server' }, issuer: 'issuing', ...atInit },
    { name: 'operator', der: await read(layout.operatorCert), role: { kind: 'operator' }, issuer: 'issuing', ...atInit },
    {
      name: 'bootstrap',
      der: firstCertificate(device.certPem, 'bootstrap certificate'),
      role: { kind: 'device', id: device.id },
      issuer: 'factory',
      issuedAfter: initialised,
      issuedBefore: batched,
    },
    { name: 'operational', der: operational, role: { kind: 'device', id: device.id }, issuer: 'issuing', issuedAfter: batched, issuedBefore: enrolled },
  ];
  const certificates = new Map(list.map((entry) => [entry.name, entry]));

  const dir = await tempDir(t, 'fleetgate-pki-');
  for (const entry of list) {
    await writeFile(pemFile(dir, entry.name), toPem('CERTIFICATE', entry.der));
    const chain: Buffer[] = [entry.der];
    for (let current = entry; current.issuer !== current.name; ) {
      const next = certificates.get(current.issuer);
      if (!next) throw new Error(`${current.name}: issuer ${current.issuer} unknown`);
      chain.push(next.der);
      current = next;
    }
    await writeFile(chainFile(dir, entry.name), chain.map((der) => toPem('CERTIFICATE', der)).join(''));
  }
  return { fleet, device, certificates, dir };
}

function parseCertificate(der: Buffer): pkijs.Certificate {
  const parsed = asn1js.fromBER(new Uint8Array(der));
  if (parsed.offset !== der.length) throw new Error(`not one BER element: ${parsed.result.error}`);
  return new pkijs.Certificate({ schema: parsed.result });
}

function extensionMap(certificate: pkijs.Certificate): Map<string, pkijs.Extension> {
  const map = new Map<string, pkijs.Extension>();
  for (const extension of certificate.extensions ?? []) {
    if (map.has(extension.extnID)) throw new Error(`extension ${extension.extnID} appears twice`);
    map.set(extension.extnID, extension);
  }
  return map;
}

function subjectKeyId(certificate: pkijs.Certificate): Buffer | undefined {
  const value = extensionMap(certificate).get(OIDS.subjectKeyIdentifier)?.parsedValue;
  return value instanceof asn1js.OctetString ? Buffer.from(value.valueBlock.valueHexView) : undefined;
}

/** Bit numbers set in a BIT STRING (bit 0 = most significant bit of the first byte). */
function setBits(bits: asn1js.BitString): number[] {
  const view = bits.valueBlock.valueHexView;
  const set: number[] = [];
  for (let bit = 0; bit < view.length * 8 - bits.valueBlock.unusedBits; bit++) {
    if (((view[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) set.push(bit);
  }
  return set;
}

/** subjectAltName entries as `DNS:x`, `IP:a.b.c.d` / `IP:0:0:...:1`, `URI:x`, or `tag<n>` for others. */
function altNames(extension: pkijs.Extension | undefined): string[] {
  const value = extension?.parsedValue;
  if (!(value instanceof pkijs.AltName)) return [];
  return value.altNames.map((name) => {
    const raw: unknown = name.value;
    if (name.type === 2 && typeof raw === 'string') return `DNS:${raw}`;
    if (name.type === 6 && typeof raw === 'string') return `URI:${raw}`;
    if (name.type === 7 && raw instanceof asn1js.OctetString) {
      const octets = Buffer.from(raw.valueBlock.valueHexView);
      if (octets.length === 4) return `IP:${[...octets].join('.')}`;
      const groups: string[] = [];
      for (let index = 0; index < octets.length; index += 2) groups.push(octets.readUInt16BE(index).toString(16));
      return `IP:${groups.join(':')}`;
    }
    return `tag${name.type}`;
  });
}

/** The extension OIDs each role carries: exactly these, nothing more. */
function expectedExtensionOids(role: Role): string[] {
  const common = [OIDS.basicConstraints, OIDS.keyUsage, OIDS.subjectKeyIdentifier, OIDS.authorityKeyIdentifier];
  return role.kind === 'root' || role.kind === 'intermediate' ? common.sort() : [...common, OIDS.extKeyUsage, OIDS.subjectAltName].sort();
}

/** Checks every profile rule of one certificate, as pkijs reads it. */
function checkProfile(t: ExecutionContext, entry: Issued, issuer: pkijs.Certificate): void {
  const label = `${entry.name}:`;
  const certificate = parseCertificate(entry.der);
  const extensions = extensionMap(certificate);
  const isCa = entry.role.kind === 'root' || entry.role.kind === 'intermediate';

  t.is(certificate.version, 2, `${label} X.509 v3`);

  // Signature: SHA-256 from the P-256 root and intermediates (explicitly chosen); never SHA-1.
  const expectedSignature = OIDS.ecdsaWithSha256;
  t.is(certificate.signatureAlgorithm.algorithmId, expectedSignature, `${label} outer signature algorithm`);
  t.is(certificate.signature.algorithmId, expectedSignature, `${label} TBS signature algorithm`);
  t.is(certificate.signatureAlgorithm.algorithmParams, undefined, `${label} ECDSA AlgorithmIdentifier without parameters (RFC 5758 §3.2)`);

  // Key: P-256 everywhere (the root too: see datadir/init.ts for why not P-384).
  const spki = certificate.subjectPublicKeyInfo.algorithm;
  t.is(spki.algorithmId, OIDS.ecPublicKey, `${label} EC key`);
  const curve: unknown = spki.algorithmParams;
  t.true(curve instanceof asn1js.ObjectIdentifier, `${label} named curve`);
  if (curve instanceof asn1js.ObjectIdentifier) t.is(curve.getValue(), OIDS.prime256v1, `${label} curve`);

  // Serial: positive, at most 16 octets, ~128 random bits (fewer octets only when the top octets
  // came out zero: 15 with probability 1/128, 13 or fewer about once in 8 million).
  const serial = Buffer.from(certificate.serialNumber.valueBlock.valueHexView);
  t.true(serial.length >= 14 && serial.length <= 16, `${label} serial of ${serial.length} octets: ${serial.toString('hex')}`);
  t.is((serial[0] ?? 0x80) & 0x80, 0, `${label} serial is positive`);

  // Validity: back-dated a few minutes for clock skew.
  const notBefore = certificate.notBefore.value.getTime();
  const notAfter = certificate.notAfter.value.getTime();
  t.true(notBefore <= entry.issuedBefore - 2 * 60_000, `${label} notBefore ${new Date(notBefore).toISOString()} is at least 2 min before issuance (${new Date(entry.issuedBefore).toISOString()})`);
  t.true(notBefore >= entry.issuedAfter - 15 * 60_000, `${label} notBefore ${new Date(notBefore).toISOString()} is at most 15 min before issuance`);
  t.true(notAfter > Date.now(), `${label} valid now`);
  t.true(notAfter <= issuer.notAfter.value.getTime(), `${label} does not outlive its issuer`);

  // Names chain byte for byte.
  t.true(certificate.issuer.isEqual(issuer.subject), `${label} issuer name equals the issuer's subject`);

  // Exactly the profile's extensions.
  t.deepEqual([...extensions.keys()].sort(), expectedExtensionOids(entry.role), `${label} extension set`);

  const basic = extensions.get(OIDS.basicConstraints);
  t.is(basic?.critical, true, `${label} basicConstraints critical`);
  const constraints = basic?.parsedValue;
  if (!(constraints instanceof pkijs.BasicConstraints)) {
    t.fail(`${label} basicConstraints unreadable`);
  } else {
    t.is(constraints.cA, isCa, `${label} cA`);
    const pathLength = constraints.pathLenConstraint instanceof asn1js.Integer ? constraints.pathLenConstraint.valueBlock.valueDec : constraints.pathLenConstraint;
    t.is(pathLength, entry.role.kind === 'root' ? 1 : entry.role.kind === 'intermediate' ? 0 : undefined, `${label} pathLenConstraint`);
  }

  const keyUsage = extensions.get(OIDS.keyUsage);
  t.is(keyUsage?.critical, true, `${label} keyUsage critical`);
  const usageBits = keyUsage?.parsedValue;
  if (usageBits instanceof asn1js.BitString) t.deepEqual(setBits(usageBits), isCa ? [KEY_CERT_SIGN, CRL_SIGN] : [DIGITAL_SIGNATURE], `${label} keyUsage bits`);
  else t.fail(`${label} keyUsage unreadable`);

  if (!isCa) {
    const eku = extensions.get(OIDS.extKeyUsage);
    t.is(eku?.critical, false, `${label} extKeyUsage not critical`);
    const purposes = eku?.parsedValue instanceof pkijs.ExtKeyUsage ? eku.parsedValue.keyPurposes : [];
    t.deepEqual(purposes, [entry.role.kind === 'server' ? OIDS.serverAuth : OIDS.clientAuth], `${label} extKeyUsage`);

    const san = extensions.get(OIDS.subjectAltName);
    t.is(san?.critical, false, `${label} subjectAltName not critical (the subject is not empty)`);
    const expectedNames =
      entry.role.kind === 'server'
        ? ['DNS:localhost', 'IP:127.0.0.1', 'IP:0:0:0:0:0:0:0:1']
        : entry.role.kind === 'operator'
          ? ['URI:urn:fleetgate:operator:operator']
          : entry.role.kind === 'device'
            ? [`URI:${deviceIdentityUri(entry.role.id)}`]
            : [];
    t.deepEqual(altNames(san).sort(), expectedNames.sort(), `${label} subjectAltName`);
  }

  const ski = subjectKeyId(certificate);
  t.true(ski !== undefined && ski.length > 0, `${label} subjectKeyIdentifier present`);
  t.is(extensions.get(OIDS.subjectKeyIdentifier)?.critical, false, `${label} SKI not critical`);
  const aki = extensions.get(OIDS.authorityKeyIdentifier);
  t.is(aki?.critical, false, `${label} AKI not critical`);
  const akiValue = aki?.parsedValue;
  const authorityKeyId = akiValue instanceof pkijs.AuthorityKeyIdentifier && akiValue.keyIdentifier ? Buffer.from(akiValue.keyIdentifier.valueBlock.valueHexView) : undefined;
  t.is(authorityKeyId?.toString('hex'), subjectKeyId(issuer)?.toString('hex'), `${label} AKI equals the issuer's SKI`);
}

test('openssl verify -x509_strict accepts every certificate for its purpose, and only for it', async (t) => {
  const { fleet, dir } = await install(t);
  const root = fleet.layout.rootCert;
  const issuing = fleet.layout.authorityCert('issuing');
  const factory = fleet.layout.authorityCert('factory');
  const verify = async (file: string, extra: readonly string[]): Promise<{ ok: boolean; output: string }> => {
    const result = await run('openssl', ['verify', '-x509_strict', '-auth_level', '3', '-CAfile', root, ...extra, file]);
    return { ok: result.code === 0 && result.stdout.includes(': OK'), output: `${result.stdout}${result.stderr}` };
  };
  const accepts: ReadonlyArray<readonly [string, string, readonly string[]]> = [
    ['root is self-signed and trusted', root, []],
    ['root may sign CRLs', root, ['-purpose', 'crlsign']],
    ['issuing CA under the root', issuing, ['-purpose', 'any']],
    ['issuing CA may sign CRLs', issuing, ['-purpose', 'crlsign']],
    ['factory CA under the root', factory, ['-purpose', 'any']],
    ['factory CA may sign CRLs', factory, ['-purpose', 'crlsign']],
    ['server certificate for localhost', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', issuing, '-verify_hostname', 'localhost']],
    ['server certificate for 127.0.0.1', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', issuing, '-verify_ip', '127.0.0.1']],
    ['server certificate for ::1', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', issuing, '-verify_ip', '::1']],
    ['operator certificate is a TLS client', pemFile(dir, 'operator'), ['-purpose', 'sslclient', '-untrusted', issuing]],
    // The files the listeners and the CLI load carry their own chain (leaf + issuing CA).
    ['tls/server.crt with the chain it ships', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', fleet.layout.serverCert]],
    ['operator.crt with the chain it ships', pemFile(dir, 'operator'), ['-purpose', 'sslclient', '-untrusted', fleet.layout.operatorCert]],
    ['a bootstrap .crt with the chain it ships', pemFile(dir, 'bootstrap'), ['-purpose', 'sslclient', '-untrusted', chainFile(dir, 'bootstrap')]],
    ['bootstrap certificate is a TLS client under the factory CA', pemFile(dir, 'bootstrap'), ['-purpose', 'sslclient', '-untrusted', factory]],
    ['operational certificate is a TLS client under the issuing CA', pemFile(dir, 'operational'), ['-purpose', 'sslclient', '-untrusted', issuing]],
  ];
  const refuses: ReadonlyArray<readonly [string, string, readonly string[]]> = [
    ['server certificate for another host', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', issuing, '-verify_hostname', 'evil.example']],
    ['server certificate for another address', pemFile(dir, 'server'), ['-purpose', 'sslserver', '-untrusted', issuing, '-verify_ip', '10.0.0.1']],
    ['server certificate as a client', pemFile(dir, 'server'), ['-purpose', 'sslclient', '-untrusted', issuing]],
    ['operator certificate as a server', pemFile(dir, 'operator'), ['-purpose', 'sslserver', '-untrusted', issuing]],
    ['bootstrap certificate as a server', pemFile(dir, 'bootstrap'), ['-purpose', 'sslserver', '-untrusted', factory]],
    ['operational certificate as a server', pemFile(dir, 'operational'), ['-purpose', 'sslserver', '-untrusted', issuing]],
    ['operational certificate with the wrong intermediate', pemFile(dir, 'operational'), ['-purpose', 'sslclient', '-untrusted', factory]],
    ['bootstrap certificate with the wrong intermediate', pemFile(dir, 'bootstrap'), ['-purpose', 'sslclient', '-untrusted', issuing]],
    ['a device certificate used as a CA', pemFile(dir, 'operator'), ['-purpose', 'sslclient', '-untrusted', pemFile(dir, 'operational')]],
  ];
  const results = await Promise.all([...accepts, ...refuses].map(([, file, extra]) => verify(file, extra)));
  accepts.forEach(([what], index) => t.true(results[index]?.ok, `${what}: ${results[index]?.output}`));
  refuses.forEach(([what], index) => t.false(results[accepts.length + index]?.ok, `${what} must fail: ${results[accepts.length + index]?.output}`));
});

test('GnuTLS certtool verifies every chain up to the root, with purpose and hostname', async (t) => {
  const { fleet, dir } = await install(t);
  const root = fleet.layout.rootCert;
  const VERIFIED = 'Chain verification output: Verified. The certificate is trusted.';
  const cases: ReadonlyArray<readonly [string, readonly string[]]> = [
    ['issuing', []],
    ['factory', []],
    ['server', ['--verify-purpose', OIDS.serverAuth, '--verify-hostname', 'localhost']],
    ['operator', ['--verify-purpose', OIDS.clientAuth]],
    ['bootstrap', ['--verify-purpose', OIDS.clientAuth]],
    ['operational', ['--verify-purpose', OIDS.clientAuth]],
  ];
  await Promise.all(
    cases.map(async ([name, extra]) => {
      const chain = chainFile(dir, name);
      const chainCount = fromPemAll(await readFile(chain, 'utf8'), 'CERTIFICATE').length;
      t.is(chainCount, name === 'issuing' || name === 'factory' ? 2 : 3, `${name}: chain file holds leaf, intermediate(s) and root`);
      // The chain alone: each certificate signed by the next, the last one self-signed.
      const alone = await run('certtool', ['--verify-chain', '--infile', chain]);
      t.is(alone.code, 0, `${name} --verify-chain: ${alone.stdout}${alone.stderr}`);
      t.true(alone.stdout.includes(VERIFIED), `${name} --verify-chain: ${alone.stdout}`);
      t.false(/Not verified|NOT trusted/i.test(alone.stdout), `${name} --verify-chain: ${alone.stdout}`);
      // Against the pinned root, at GnuTLS's "high" (128-bit) security profile.
      const anchored = await run('certtool', ['--verify', '--verify-profile', 'high', '--load-ca-certificate', root, '--infile', chain, ...extra]);
      t.is(anchored.code, 0, `${name} --verify: ${anchored.stdout}${anchored.stderr}`);
      t.true(anchored.stdout.includes(VERIFIED), `${name} --verify: ${anchored.stdout}`);
    }),
  );
  // certtool does refuse: a client certificate is no server, a server certificate no client.
  const refusals: ReadonlyArray<readonly [string, readonly string[]]> = [
    ['operational', ['--verify-purpose', OIDS.serverAuth]],
    ['bootstrap', ['--verify-purpose', OIDS.serverAuth]],
    ['server', ['--verify-purpose', OIDS.clientAuth]],
    ['server', ['--verify-purpose', OIDS.serverAuth, '--verify-hostname', 'evil.example']],
  ];
  for (const [name, extra] of refusals) {
    const refused = await run('certtool', ['--verify', '--load-ca-certificate', root, '--infile', chainFile(dir, name), ...extra]);
    t.not(refused.code, 0, `${name} ${extra.join(' ')} must not verify: ${refused.stdout}`);
    t.false(refused.stdout.includes(VERIFIED), `${name} ${extra.join(' ')}`);
  }
});

test('pkijs reads every certificate as the profile says: algorithms, serial, validity, extensions, key ids', async (t) => {
  const { certificates } = await install(t);
  const parsed = new Map([...certificates.values()].map((entry) => [entry.name, parseCertificate(entry.der)]));
  for (const entry of certificates.values()) {
    const issuer = parsed.get(entry.issuer);
    const certificate = parsed.get(entry.name);
    if (!issuer || !certificate) throw new Error(`no issuer for ${entry.name}`);
    checkProfile(t, entry, issuer);
    // pkijs checks the signature with WebCrypto: independent of our signer and of OpenSSL's verifier.
    t.true(await certificate.verify(issuer), `${entry.name}: signature verifies with ${entry.issuer}'s key`);
  }
  // A wrong issuer key must not verify (the check above has teeth).
  const operational = parsed.get('operational');
  const factory = parsed.get('factory');
  if (operational && factory) t.false(await operational.verify(factory), 'operational certificate does not verify with the factory key');

  // Serials and key identifiers are unique across the installation.
  const serials = [...parsed.values()].map((certificate) => Buffer.from(certificate.serialNumber.valueBlock.valueHexView).toString('hex'));
  t.is(new Set(serials).size, serials.length, `serials are unique: ${serials.join(' ')}`);
  const keyIds = [...parsed.values()].map((certificate) => subjectKeyId(certificate)?.toString('hex'));
  t.is(new Set(keyIds).size, keyIds.length, 'subject key identifiers are unique');
});

test('device certificates carry the device identity in the subject', async (t) => {
  const { certificates, device } = await install(t);
  for (const name of ['bootstrap', 'operational']) {
    const der = certificates.get(name)?.der;
    if (!der) throw new Error(name);
    const subject = parseCertificate(der).subject.typesAndValues.map((attribute) => [attribute.type, String(attribute.value.valueBlock.value)]);
    t.deepEqual(subject.filter(([type]) => type === OIDS.commonName), [[OIDS.commonName, device.id]], `${name}: one CN, the device id`);
    t.deepEqual(subject.filter(([type]) => type === OIDS.organizationalUnitName), [[OIDS.organizationalUnitName, 'thermostat']], `${name}: OU is the model`);
  }
});

test('openssl -text shows only the expected, modern content', async (t) => {
  const { certificates, dir } = await install(t);
  const expectedHeadings = (role: Role): string[] =>
    role.kind === 'root' || role.kind === 'intermediate'
      ? ['X509v3 Authority Key Identifier:', 'X509v3 Basic Constraints: critical', 'X509v3 Key Usage: critical', 'X509v3 Subject Key Identifier:']
      : [
          'X509v3 Authority Key Identifier:',
          'X509v3 Basic Constraints: critical',
          'X509v3 Extended Key Usage:',
          'X509v3 Key Usage: critical',
          'X509v3 Subject Alternative Name:',
          'X509v3 Subject Key Identifier:',
        ];
  await Promise.all(
    [...certificates.values()].map(async (entry) => {
      const result = await run('openssl', ['x509', '-noout', '-text', '-in', pemFile(dir, entry.name)]);
      t.is(result.code, 0, result.stderr);
      t.is(result.stderr, '', `${entry.name}: openssl has no complaint`);
      const text = result.stdout;
      t.false(/sha-?1|md5|rsa/i.test(text), `${entry.name}: no SHA-1, MD5 or RSA anywhere:\n${text}`);
      t.regex(text, /Version: 3 \(0x2\)/, entry.name);
      const algorithm = 'ecdsa-with-SHA256';
      t.is(text.split(`Signature Algorithm: ${algorithm}`).length - 1, 2, `${entry.name}: ${algorithm} in the TBS and outside`);
      t.is((text.match(/Signature Algorithm:/g) ?? []).length, 2, entry.name);
      const headings = [...text.matchAll(/^\s{12}(\S.*:(?: critical)?)\s*$/gm)].map((match) => match[1]?.trim() ?? '').sort();
      t.deepEqual(headings, expectedHeadings(entry.role), `${entry.name}: extension list`);
      t.false(/Netscape|Unknown|<unsupported>|Policies|CRL Distribution|Authority Information/i.test(text), `${entry.name}: nothing unexpected`);
      if (entry.role.kind === 'root' || entry.role.kind === 'intermediate') {
        t.regex(text, entry.role.kind === 'root' ? /CA:TRUE, pathlen:1/ : /CA:TRUE, pathlen:0/, entry.name);
        t.regex(text, /^\s+Certificate Sign, CRL Sign\s*$/m, entry.name);
      } else {
        t.regex(text, /^\s+CA:FALSE\s*$/m, entry.name);
        t.regex(text, /^\s+Digital Signature\s*$/m, entry.name);
        t.regex(text, entry.role.kind === 'server' ? /^\s+TLS Web Server Authentication\s*$/m : /^\s+TLS Web Client Authentication\s*$/m, entry.name);
      }
    }),
  );
});

test('requested extensions are never copied: a greedy CSR and a bare CSR get the same profile', async (t) => {
  const fleet = await startFleet(t);
  const devices = await factoryCredentials(t, fleet, 'thermostat', 2);
  const [greedy, bare] = devices;
  if (!greedy || !bare) throw new Error('no bootstrap credentials');
  const dir = await tempDir(t, 'fleetgate-csr-');

  const { der: greedyCsr } = await opensslCsr(dir, {
    name: 'greedy',
    subject: `/O=Evil Corp/OU=camera/CN=${greedy.id}`,
    addext: [
      // keyCertSign/cRLSign are refused outright (test/pki-strict.test.ts), not trimmed.
      'keyUsage=critical,keyEncipherment,dataEncipherment',
      `subjectAltName=URI:${deviceIdentityUri(greedy.id)}`,
      'nsComment=requested by the device',
      'basicConstraints=critical,CA:FALSE',
      'certificatePolicies=1.2.3.4',
      'extendedKeyUsage=clientAuth',
      '1.3.6.1.4.1.55555.1=ASN1:UTF8String:extra',
    ],
  });
  // Sanity: the CSR really asks for all of that.
  const shown = await run('openssl', ['req', '-inform', 'DER', '-noout', '-text'], { input: greedyCsr });
  for (const needle of ['Key Encipherment', 'Netscape Comment', 'Certificate Policies', '1.3.6.1.4.1.55555.1', 'Evil Corp']) t.true(shown.stdout.includes(needle), needle);

  const { der: bareCsr } = await opensslCsr(dir, { name: 'bare', subject: `/CN=${bare.id}` });

  const enrollStarted = Date.now();
  const issued = [
    { device: greedy, der: await enroll(t, fleet, greedy, greedyCsr) },
    { device: bare, der: await enroll(t, fleet, bare, bareCsr) },
  ];
  const enrollEnded = Date.now();
  const issuing = parseCertificate(firstCertificate(await readFile(fleet.layout.authorityCert('issuing'), 'utf8'), 'issuing.crt'));
  for (const { device, der } of issued) {
    checkProfile(t, { name: `enrolled ${device.id}`, der, role: { kind: 'device', id: device.id }, issuer: 'issuing', issuedAfter: enrollStarted, issuedBefore: enrollEnded }, issuing);
    const certificate = parseCertificate(der);
    const subject = certificate.subject.typesAndValues.map((attribute) => `${attribute.type}=${String(attribute.value.valueBlock.value)}`);
    t.deepEqual(subject, [`${OIDS.organizationName}=fleetgate devices`, `${OIDS.organizationalUnitName}=thermostat`, `${OIDS.commonName}=${device.id}`], 'the subject is the profile\'s, not the CSR\'s');
    const text = (await run('openssl', ['x509', '-inform', 'DER', '-noout', '-text'], { input: der })).stdout;
    for (const absent of ['Certificate Sign', 'Key Encipherment', 'Netscape Comment', 'Certificate Policies', '55555', 'Evil Corp', 'camera']) {
      t.false(text.includes(absent), `${device.id}: "${absent}" must not be copied from the CSR`);
    }
  }
  // Apart from identities and keys, both certificates carry byte-identical extensions.
  const perCertificate = new Set<string>([OIDS.subjectAltName, OIDS.subjectKeyIdentifier]);
  const fixedExtensions = (der: Buffer): string[] =>
    (parseCertificate(der).extensions ?? [])
      .filter((extension) => !perCertificate.has(extension.extnID))
      .map((extension) => Buffer.from(extension.toSchema().toBER(false)).toString('hex'));
  t.deepEqual(fixedExtensions(issued[0]?.der ?? Buffer.alloc(0)), fixedExtensions(issued[1]?.der ?? Buffer.alloc(0)));
});
