/**
 * Strict parsing of what devices and operators send (security review items 7, 10-13): the CSR
 * public key re-encoded, never copied; strict DER for CSRs and EST answers with one reader shared
 * by server and SDK; linear, capped PEM parsing; scrypt for the CA key passphrase.
 */
import test, { type ExecutionContext } from 'ava';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import * as sdkReader from '../device-sdk/src/der-reader.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { parseCertsOnly } from '../device-sdk/src/pkcs7.ts';
import { ERROR_CODE_HEADER, EST_PATHS } from '../device-sdk/src/protocol.ts';
import { validateTrust } from '../server/src/authority/trust-registration.ts';
import { OperatorAuthorityError } from '../server/src/authority/errors.ts';
import { checkRequestedExtensions } from '../server/src/authority/csr-policy.ts';
import { EnrollmentError } from '../server/src/authority/errors.ts';
import { parseCsr, verifyCsrSignature } from '../server/src/pki/csr.ts';
import * as serverDer from '../server/src/pki/der.ts';
import { bitString, boolean, integer, namedBitString, nullValue, octetString, oid, sequence, setOf, tlv, utf8String } from '../server/src/pki/der.ts';
import { PkiError } from '../server/src/pki/errors.ts';
import { KEY_SCRYPT, parsePrivateKeyPem, privateKeyToPem, readPrivateKey } from '../server/src/pki/keys.ts';
import { OID } from '../server/src/pki/oids.ts';
import { fromPem, fromPemAll, MAX_PEM_BYTES, toPem } from '../server/src/pki/pem.ts';
import { certsOnly } from '../server/src/pki/pkcs7.ts';
import { extension, forgeCsr, forgeInfo, wrapSigned } from './helpers/csr-forge.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
const ed25519 = generateKeyPairSync('ed25519').privateKey;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const spkiOf = (key: KeyObject): Buffer => createPublicKey(key).export({ type: 'spki', format: 'der' });
/** The uncompressed EC point (BIT STRING bytes) of a key's SPKI. */
const pointOf = (key: KeyObject): Buffer => spkiOf(key).subarray(-65);
const ecAlgorithm = sequence(oid(OID.ecPublicKey), oid(OID.prime256v1));

function refusedAs(t: ExecutionContext, der: Buffer, code: PkiError['code'], message?: RegExp, label?: string): void {
  const error = t.throws(() => verifyCsrSignature(parseCsr(der)), { instanceOf: PkiError }, label);
  t.is(error?.code, code, `${label ?? ''}: ${error?.message}`);
  if (message) t.regex(error?.message ?? '', message, label);
}

async function enroll(fleet: Fleet, credential: Credential, der: Buffer): Promise<{ status: number; code: string | undefined; text: string }> {
  const response = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(der), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  return { status: response.status, code: response.headers[ERROR_CODE_HEADER] as string | undefined, text: response.text };
}

// ---------------------------------------------------------------------------------------------
// 7. The CA re-encodes the CSR public key; only exact, named-curve encodings pass.

test('a CSR whose SubjectPublicKeyInfo has an extra element gets 400, nothing is written, and the retry gets 400 again (not 500)', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no credential');
  const spki = sequence(ecAlgorithm, bitString(pointOf(p256)), nullValue());
  const der = forgeCsr({ privateKey: p256, commonName: device.id, spki });
  for (const attempt of ['first', 'retry']) {
    const response = await enroll(fleet, device, der);
    t.is(response.status, 400, `${attempt}: ${response.text}`);
    t.is(response.code, 'ENROLL_CSR_MALFORMED', attempt);
  }
  t.is(await fleet.server.registry.getDevice(device.id), undefined, 'no device record');
  t.deepEqual(await fleet.server.registry.listCertificates(device.id), [], 'no certificate recorded');
  // The same key in its canonical encoding enrolls, and the certificate carries those exact bytes.
  const good = await enroll(fleet, device, forgeCsr({ privateKey: p256, commonName: device.id }));
  t.is(good.status, 200, good.text);
});

test('public key encodings other than the canonical named-curve / NULL / absent forms are refused', async (t) => {
  const dir = await tempDir(t, 'fleetgate-spki-');
  // Explicit curve parameters (RFC 5480 §2.1.1 forbids specifiedCurve), made by openssl.
  const keyPath = join(dir, 'explicit.key');
  await writeFile(keyPath, p256.export({ type: 'pkcs8', format: 'pem' }));
  const explicitPath = join(dir, 'explicit.spki');
  const explicit = await run('openssl', ['pkey', '-in', keyPath, '-pubout', '-outform', 'DER', '-ec_param_enc', 'explicit', '-out', explicitPath]);
  t.is(explicit.code, 0, explicit.stderr);
  const explicitSpki = await readFile(explicitPath);
  const point = pointOf(p256);
  const compressed = Buffer.concat([Buffer.from([0x02 + ((point[64] ?? 0) & 1)]), point.subarray(1, 33)]);
  const cases: ReadonlyArray<readonly [string, KeyObject, Buffer, PkiError['code'], RegExp]> = [
    ['extra element in SubjectPublicKeyInfo', p256, sequence(ecAlgorithm, bitString(point), nullValue()), 'PKI_CSR_MALFORMED', /SubjectPublicKeyInfo/],
    ['extra element in its AlgorithmIdentifier', p256, sequence(sequence(oid(OID.ecPublicKey), oid(OID.prime256v1), nullValue()), bitString(point)), 'PKI_CSR_MALFORMED', /algorithm/],
    ['no curve at all', p256, sequence(sequence(oid(OID.ecPublicKey)), bitString(point)), 'PKI_CSR_MALFORMED', /name their curve/],
    ['NULL instead of a curve', p256, sequence(sequence(oid(OID.ecPublicKey), nullValue()), bitString(point)), 'PKI_CSR_MALFORMED', /name their curve/],
    ['compressed point', p256, sequence(ecAlgorithm, bitString(compressed)), 'PKI_CSR_MALFORMED', /uncompressed/],
    ['point not on the curve', p256, sequence(ecAlgorithm, bitString(Buffer.concat([point.subarray(0, 64), Buffer.from([(point[64] ?? 0) ^ 1])]))), 'PKI_CSR_MALFORMED', /cannot be decoded/],
    ['Ed25519 with NULL parameters', ed25519, sequence(sequence(oid(OID.ed25519), nullValue()), bitString(spkiOf(ed25519).subarray(-32))), 'PKI_CSR_MALFORMED', /absent parameters/],
    ['RSA without NULL parameters', rsa, sequence(sequence(oid(OID.rsaEncryption)), bitString(spkiOf(rsa).subarray(-270))), 'PKI_CSR_MALFORMED', /rsaEncryption parameters/],
    ['an unsupported curve (secp256k1)', p256, sequence(sequence(oid(OID.ecPublicKey), oid('1.3.132.0.10')), bitString(point)), 'PKI_KEY_POLICY', /curve 1\.3\.132\.0\.10/],
    ['an unsupported algorithm (X25519)', p256, sequence(sequence(oid('1.3.101.110')), bitString(Buffer.alloc(32, 9))), 'PKI_KEY_POLICY', /1\.3\.101\.110/],
  ];
  if (explicitSpki.length > 0) {
    refusedAs(t, forgeCsr({ privateKey: p256, commonName: 'd1', spki: explicitSpki }), 'PKI_CSR_MALFORMED', /explicit parameters/, 'explicit curve parameters');
  } else {
    t.fail('openssl wrote no explicit-parameter key');
  }
  for (const [label, key, spki, code, message] of cases) refusedAs(t, forgeCsr({ privateKey: key, commonName: 'd1', spki }), code, message, label);
});

test('every accepted key re-encodes to the exact bytes of the CSR (P-256, P-384, Ed25519, RSA, SDK and openssl CSRs)', async (t) => {
  for (const key of [p256, p384, ed25519, rsa]) {
    const der = forgeCsr({ privateKey: key, commonName: 'd1' });
    const csr = parseCsr(der);
    verifyCsrSignature(csr);
    t.true(csr.subjectPublicKeyInfo.equals(spkiOf(key)), key.asymmetricKeyType);
  }
  const sdk = Buffer.from(await createCsr('d1', await generateDeviceKeyPair()));
  const parsed = parseCsr(sdk);
  verifyCsrSignature(parsed);
  t.true(sdk.includes(parsed.subjectPublicKeyInfo));
});

// ---------------------------------------------------------------------------------------------
// 11. Strict CSR structure.

test('junk parameters in the signature AlgorithmIdentifier are refused (nine variants)', (t) => {
  const variants: ReadonlyArray<readonly [string, KeyObject, Buffer]> = [
    ['ecdsa-with-SHA256 + NULL', p256, sequence(oid(OID.ecdsaWithSha256), nullValue())],
    ['ecdsa-with-SHA256 + INTEGER', p256, sequence(oid(OID.ecdsaWithSha256), integer(0n))],
    ['ecdsa-with-SHA256 + OCTET STRING', p256, sequence(oid(OID.ecdsaWithSha256), octetString(Buffer.from('junk')))],
    ['ecdsa-with-SHA256 + SEQUENCE', p256, sequence(oid(OID.ecdsaWithSha256), sequence())],
    ['ecdsa-with-SHA256 + NULL + NULL', p256, sequence(oid(OID.ecdsaWithSha256), nullValue(), nullValue())],
    ['ecdsa-with-SHA384 + NULL', p384, sequence(oid(OID.ecdsaWithSha384), nullValue())],
    ['sha256WithRSAEncryption without NULL', rsa, sequence(oid(OID.sha256WithRsa))],
    ['sha256WithRSAEncryption + INTEGER', rsa, sequence(oid(OID.sha256WithRsa), integer(0n))],
    ['Ed25519 + NULL', ed25519, sequence(oid(OID.ed25519), nullValue())],
  ];
  for (const [label, key, algorithm] of variants) {
    refusedAs(t, forgeCsr({ privateKey: key, commonName: 'd1', signatureAlgorithm: algorithm }), 'PKI_CSR_MALFORMED', /signatureAlgorithm/, label);
  }
});

test('extra elements, duplicates and second encodings are refused, never trimmed', (t) => {
  const base = { privateKey: p256, commonName: 'd1' } as const;
  const info = forgeInfo(base);
  const cases: ReadonlyArray<readonly [string, Buffer, RegExp]> = [
    ['extra element in CertificationRequest', forgeCsr({ ...base, outerExtra: [nullValue()] }), /CertificationRequest: expected 3/],
    ['extra element in CertificationRequestInfo', forgeCsr({ ...base, infoExtra: [nullValue()] }), /CertificationRequestInfo: expected 3 to 4/],
    ['basicConstraints CA:true then CA:false', forgeCsr({ ...base, extensions: [extension(OID.basicConstraints, sequence(boolean(true)), true), extension(OID.basicConstraints, sequence())] }), /appears twice/],
    ['explicit critical FALSE', forgeCsr({ ...base, extensions: [extension(OID.extKeyUsage, sequence(oid(OID.clientAuth)), false)] }), /critical FALSE/],
    ['BOOLEAN 0x01 for TRUE', forgeCsr({ ...base, extensions: [sequence(oid(OID.extKeyUsage), tlv(0x01, Buffer.from([1])), octetString(sequence(oid(OID.clientAuth))))] }), /0x00 or 0xFF/],
    ['basicConstraints cA FALSE encoded', forgeCsr({ ...base, extensions: [extension(OID.basicConstraints, sequence(boolean(false)))] }), /cA FALSE/],
    ['extnValue with trailing bytes', forgeCsr({ ...base, extensions: [extension(OID.extKeyUsage, Buffer.concat([sequence(oid(OID.clientAuth)), nullValue()]))] }), /trailing/],
    ['empty extensions', forgeCsr({ ...base, attributes: sequence(oid(OID.extensionRequest), setOf(sequence())) }), /Extensions: empty/],
    ['two extensionRequest values', forgeCsr({ ...base, attributes: sequence(oid(OID.extensionRequest), setOf(sequence(extension(OID.extKeyUsage, sequence(oid(OID.clientAuth)))), sequence(extension(OID.subjectAltName, sequence(tlv(0x86, Buffer.from('urn:x'))))))) }), /exactly one value/],
    ['the same attribute twice', forgeCsr({ ...base, attributes: Buffer.concat([sequence(oid(OID.challengePassword), setOf(utf8String('a'))), sequence(oid(OID.challengePassword), setOf(utf8String('a')))]) }), /appears twice/],
    ['attributes out of DER order', forgeCsr({ ...base, attributes: Buffer.concat([sequence(oid(OID.extensionRequest), setOf(sequence(extension(OID.extKeyUsage, sequence(oid(OID.clientAuth)))))), sequence(oid(OID.challengePassword), setOf(utf8String('a')))]) }), /DER order/],
    ['version as a non-minimal INTEGER', forgeCsr({ ...base, version: tlv(0x02, Buffer.from([0, 0])) }), /non-minimal INTEGER/],
    ['version 1', forgeCsr({ ...base, version: integer(1n) }), /version must be 0/],
    ['trailing bytes after the request', Buffer.concat([forgeCsr(base), Buffer.from([0])]), /trailing/],
    ['indefinite length', Buffer.concat([Buffer.from([0x30, 0x80]), forgeCsr(base).subarray(3), Buffer.from([0, 0])]), /indefinite|DER/],
    ['non-minimal length on the signature algorithm', wrapSigned(info, p256, Buffer.from('30810a06082a8648ce3d040302', 'hex')), /non-minimal DER length/],
    ['invalid UTF-8 in the subject', wrapSigned(Buffer.from(info.toString('hex').replace(Buffer.from('d1').toString('hex'), 'c0af'), 'hex'), p256), /UTF-8/],
  ];
  for (const [label, der, message] of cases) refusedAs(t, der, 'PKI_CSR_MALFORMED', message, label);
});

test('keyUsage keyCertSign or cRLSign in a CSR is refused with ENROLL_EXTENSION_REFUSED; digitalSignature passes', (t) => {
  for (const bits of [[0, 5], [6], [5, 6]]) {
    const csr = parseCsr(forgeCsr({ privateKey: p256, commonName: 'd1', extensions: [extension(OID.keyUsage, namedBitString(bits), true)] }));
    const error = t.throws(() => checkRequestedExtensions(csr), { instanceOf: EnrollmentError }, String(bits));
    t.is(error?.code, 'ENROLL_EXTENSION_REFUSED');
    t.regex(error?.message ?? '', /keyCertSign/);
  }
  const fine = parseCsr(forgeCsr({ privateKey: p256, commonName: 'd1', extensions: [extension(OID.keyUsage, namedBitString([0]), true)] }));
  t.notThrows(() => checkRequestedExtensions(fine));
  // A named bit list with trailing zero bits is a second encoding (X.690 §11.2.2).
  refusedAs(t, forgeCsr({ privateKey: p256, commonName: 'd1', extensions: [extension(OID.keyUsage, bitString(Buffer.from([0x80, 0x00]), 0))] }), 'PKI_CSR_MALFORMED', /trailing zero bits/);
});

test('the DER reader refuses every second encoding: lengths, INTEGER, BOOLEAN, NULL, BIT STRING, SET OF order', (t) => {
  const { decodeSingle, decodeInteger, decodeBoolean, expectNull, decodeNamedBits, setOfChildren, children, DerError } = sdkReader;
  const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
  const bad: ReadonlyArray<readonly [string, () => unknown]> = [
    ['indefinite length', () => decodeSingle(hex('30 80 05 00 00 00'))],
    ['long form for a short length', () => decodeSingle(hex('04 81 01 00'))],
    ['leading zero length octet', () => decodeSingle(Buffer.concat([hex('04 82 00 80'), Buffer.alloc(128)]))],
    ['trailing bytes', () => decodeSingle(hex('05 00 00'))],
    ['child past its parent', () => children(decodeSingle(hex('30 02 04 05 00 00 00 00 00')))],
    ['INTEGER 00 01', () => decodeInteger(decodeSingle(hex('02 02 00 01')))],
    ['INTEGER ff 80', () => decodeInteger(decodeSingle(hex('02 02 ff 80')))],
    ['empty INTEGER', () => decodeInteger(decodeSingle(hex('02 00')))],
    ['BOOLEAN 01', () => decodeBoolean(decodeSingle(hex('01 01 01')))],
    ['BOOLEAN of two octets', () => decodeBoolean(decodeSingle(hex('01 02 ff ff')))],
    ['NULL with content', () => expectNull(decodeSingle(hex('05 01 00')))],
    ['BIT STRING unused bits not zero', () => decodeNamedBits(decodeSingle(hex('03 02 07 81')))],
    ['BIT STRING unused > 7', () => decodeNamedBits(decodeSingle(hex('03 02 08 00')))],
    ['SET OF out of order', () => setOfChildren(decodeSingle(hex('31 06 02 01 02 02 01 01')), 'SET')],
  ];
  for (const [label, decode] of bad) t.throws(decode, { instanceOf: DerError }, label);
  t.is(decodeInteger(decodeSingle(hex('02 02 00 80'))), 128n);
  t.is(decodeInteger(decodeSingle(hex('02 01 80'))), -128n);
  t.true(decodeBoolean(decodeSingle(hex('01 01 ff'))));
  t.deepEqual(decodeNamedBits(decodeSingle(hex('03 02 05 a0'))), [0, 2]);
});

// ---------------------------------------------------------------------------------------------
// 12. One strict DER reader for server and SDK; certs-only answers read strictly.

test('server and SDK share one DER reader (the same functions and error class)', (t) => {
  t.is(serverDer.readNode, sdkReader.readNode);
  t.is(serverDer.children, sdkReader.children);
  t.is(serverDer.decodeSingle, sdkReader.decodeSingle);
  t.is(serverDer.DerError, sdkReader.DerError);
});

test('a certs-only answer whose [0] declares 4 bytes does not yield the certificate after it', (t) => {
  const certificate = Buffer.from(fromPem(toPem('CERTIFICATE', forgeCertificateLike()), 'CERTIFICATE'));
  t.is(certificate[1], 0x82, 'the certificate has a 4-byte header');
  const good = certsOnly([certificate]);
  t.deepEqual(parseCertsOnly(good.toString('base64')), [certificate]);
  // SignedData with `[0] 04` wrapping only the certificate's header: the certificate's content
  // then reads as further SignedData fields, and a lax reader took the whole certificate from [0].
  const signedData = sequence(integer(1n), tlv(0x31, Buffer.alloc(0)), sequence(oid(OID.pkcs7Data)), Buffer.from([0xa0, 0x04]), certificate, tlv(0x31, Buffer.alloc(0)));
  const forged = sequence(oid(OID.pkcs7SignedData), tlv(0xa0, signedData));
  const error = t.throws(() => parseCertsOnly(forged.toString('base64')), { instanceOf: SdkError });
  t.is(error?.code, 'SDK_BAD_RESPONSE');
  // Other shapes a strict reader refuses: an extra ContentInfo element, trailing bytes, version 2.
  for (const [label, der] of [
    ['extra ContentInfo element', sequence(oid(OID.pkcs7SignedData), tlv(0xa0, sequence(integer(1n), tlv(0x31, Buffer.alloc(0)), sequence(oid(OID.pkcs7Data)), tlv(0xa0, certificate), tlv(0x31, Buffer.alloc(0)))), nullValue())],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['SignedData version 2', sequence(oid(OID.pkcs7SignedData), tlv(0xa0, sequence(integer(2n), tlv(0x31, Buffer.alloc(0)), sequence(oid(OID.pkcs7Data)), tlv(0xa0, certificate), tlv(0x31, Buffer.alloc(0)))))],
    ['a certificate that is not a SEQUENCE', sequence(oid(OID.pkcs7SignedData), tlv(0xa0, sequence(integer(1n), tlv(0x31, Buffer.alloc(0)), sequence(oid(OID.pkcs7Data)), tlv(0xa0, octetString(certificate)), tlv(0x31, Buffer.alloc(0)))))],
  ] as const) {
    t.throws(() => parseCertsOnly(der.toString('base64')), { instanceOf: SdkError }, label);
  }
});

/** A certificate-shaped DER of about 300 bytes (3 elements, 4-byte header); content is not checked. */
function forgeCertificateLike(): Buffer {
  const tbs = sequence(tlv(0xa0, integer(2n)), integer(12345n), sequence(oid(OID.ecdsaWithSha256)), octetString(Buffer.alloc(200, 7)));
  return sequence(tbs, sequence(oid(OID.ecdsaWithSha256)), bitString(Buffer.alloc(70, 1)));
}

// ---------------------------------------------------------------------------------------------
// 10. PEM: linear time, a size cap, strict base64.

/**
 * The bound is generous for a shared 2-core machine (load averages of 60 were seen while helpers
 * ran in parallel) and still far from quadratic: the old lazy regex took 3.6 s for 512 KiB, so
 * about 230 s for 4 MiB; the linear parser takes a few milliseconds when the machine is idle.
 */
const PEM_BOUND_MS = 1000;

test('4 MiB of BEGIN markers is refused in well under a second (linear PEM parsing), with and without the cap', (t) => {
  const marker = '-----BEGIN CERTIFICATE-----';
  const text = marker.repeat(Math.ceil((4 * 1024 * 1024) / marker.length));
  const withEnd = `${text}\nAAAA\n-----END CERTIFICATE-----\n`;
  for (const [label, input, options] of [
    ['default cap', text, {}],
    ['no cap, no END', text, { maxBytes: Number.POSITIVE_INFINITY }],
    ['no cap, one END at the very end', withEnd, { maxBytes: Number.POSITIVE_INFINITY }],
  ] as const) {
    const started = performance.now();
    const error = t.throws(() => fromPemAll(input, 'CERTIFICATE', options), { instanceOf: PkiError }, label);
    const elapsed = performance.now() - started;
    t.is(error?.code, 'PKI_PEM_MALFORMED', label);
    t.true(elapsed < PEM_BOUND_MS, `${label}: ${elapsed.toFixed(1)} ms`);
  }
  const started = performance.now();
  const error = t.throws(() => validateTrust({ name: 'acme', model: 'thermostat', caPem: text }, 'operator:test'), { instanceOf: OperatorAuthorityError });
  t.is(error?.code, 'OPERATOR_TRUST_INVALID');
  t.true(performance.now() - started < PEM_BOUND_MS);
  t.true(MAX_PEM_BYTES >= 64 * 1024);
});

test('PEM blocks must be canonical base64 between matching markers; other labels and text around are skipped', (t) => {
  const one = Buffer.from('0123456789abcdef');
  const two = Buffer.from('fedcba9876543210!');
  const pem = `explanatory text\n${toPem('PRIVATE KEY', Buffer.from('x'))}${toPem('CERTIFICATE', one)}between\r\n${toPem('CERTIFICATE', two)}`;
  t.deepEqual(fromPemAll(pem, 'CERTIFICATE'), [one, two]);
  t.deepEqual(fromPemAll('no pem here', 'CERTIFICATE'), []);
  const code = (input: string): string | undefined => t.throws(() => fromPemAll(input, 'CERTIFICATE'), { instanceOf: PkiError })?.code;
  t.is(code('-----BEGIN CERTIFICATE-----\nAAAA\n'), 'PKI_PEM_MALFORMED', 'no END');
  t.is(code('-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n'), 'PKI_PEM_MALFORMED', 'not base64');
  t.is(code('-----BEGIN CERTIFICATE-----\nAAB\n-----END CERTIFICATE-----\n'), 'PKI_PEM_MALFORMED', 'missing padding');
  t.is(code('-----BEGIN CERTIFICATE-----\nAB==\n-----END CERTIFICATE-----\n'), 'PKI_PEM_MALFORMED', 'non-zero trailing bits');
  t.is(code('-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n'), 'PKI_PEM_MALFORMED', 'empty block');
  t.is(t.throws(() => fromPem('nothing', 'CERTIFICATE'), { instanceOf: PkiError })?.code, 'PKI_PEM_MALFORMED');
});

// ---------------------------------------------------------------------------------------------
// 13. The CA key passphrase: scrypt, readable by openssl; old PBKDF2 files still read.

test('a passphrase-protected key is PBES2 with scrypt, openssl reads it with the passphrase only, and old PBKDF2 files still load', async (t) => {
  const dir = await tempDir(t, 'fleetgate-keys-');
  const passphrase = 'Correct horse battery staple';
  const pem = privateKeyToPem(p256, passphrase);
  t.true(pem.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----'));
  const path = join(dir, 'ca.key');
  await writeFile(path, pem, { mode: 0o600 });
  const structure = await run('openssl', ['asn1parse', '-in', path]);
  t.regex(structure.stdout, /:PBES2/);
  t.regex(structure.stdout, /:scrypt/);
  t.regex(structure.stdout, /:aes-256-cbc/);
  t.regex(structure.stdout, new RegExp(`INTEGER\\s+:${KEY_SCRYPT.N.toString(16).toUpperCase()}\\b`), 'N as configured');
  t.false(/PBKDF2/.test(structure.stdout));
  const opened = await run('openssl', ['pkey', '-in', path, '-passin', `pass:${passphrase}`, '-pubout']);
  t.is(opened.code, 0, opened.stderr);
  t.is(opened.stdout, createPublicKey(p256).export({ type: 'spki', format: 'pem' }) as string);
  t.not((await run('openssl', ['pkey', '-in', path, '-passin', 'pass:wrong', '-noout'])).code, 0);
  const loaded = await readPrivateKey(path, passphrase);
  t.true(spkiOf(loaded).equals(spkiOf(p256)));
  t.is(t.throws(() => parsePrivateKeyPem(pem, 'ca.key', 'wrong'), { instanceOf: PkiError })?.code, 'PKI_PASSPHRASE');
  t.is(t.throws(() => parsePrivateKeyPem(pem, 'ca.key'), { instanceOf: PkiError })?.code, 'PKI_PASSPHRASE');
  // A file written by an earlier fleetgate (Node's PBKDF2 default) still loads.
  const oldPath = join(dir, 'old.key');
  await writeFile(oldPath, p384.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }));
  t.regex((await run('openssl', ['asn1parse', '-in', oldPath])).stdout, /PBKDF2/);
  t.true(spkiOf(await readPrivateKey(oldPath, passphrase)).equals(spkiOf(p384)));
  t.is(await readFile(path, 'utf8'), pem);
});

test('a CSR whose unknown attribute holds malformed DER is refused, not accepted unread (found by the fuzz test, seed 86264115)', (t) => {
  // A signed CSR with attribute 1.2.840.113549.1.142 (extensionRequest with one OID byte mutated):
  // its value is a SEQUENCE holding an element that declares 154 bytes where 58 are left.
  const der = Buffer.from(
    '308201133081bb020100300e310c300a06035504030c03642d313059301306072a8648ce3d020106082a8648ce3d03010703420004eea29f9b3d239f26109288e4f8ca16206f663acf75ab4994cac2f6e129b5d2e6c1d6ba0b19f83c7e931824ab1e7237def2829f4f205f511bd2f7c66372711e41a04b304906092a864886f70d01810e313c303a159aef15bb476d99d983571b690a802704662ae93c67ce970e935f7bf53152d635d1340c0d1092ccd3b2d9ebf02fd15279220d8460d48e4715f7300a06082a8648ce3d040302034700304402204a99c074fa43567d222a264fb54346cb7b7b254f8026e2451e7f5459a945c96c022030480a66191116abb5d55a1aa2791683c9cbc10988dc62f585b6c2241074217a',
    'hex',
  );
  const error = t.throws(() => parseCsr(der), { instanceOf: PkiError });
  t.is(error?.code, 'PKI_CSR_MALFORMED');
});
