import test from 'ava';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deviceClaims, fieldClaims, certificateClaims } from '../server/src/authority/identity.ts';
import { createRootCertificate, loadAuthority, type CertificateAuthority } from '../server/src/pki/ca.ts';
import { readCertificateFields, type CertificateFields } from '../server/src/pki/certificate-fields.ts';
import { signCertificate } from '../server/src/pki/certificate.ts';
import { decodeSingle, DerError, explicit, integer, octetString, oid, sequence, utf8String, ia5String, setOf } from '../server/src/pki/der.ts';
import { basicConstraints, subjectAltName, type EncodedExtension } from '../server/src/pki/extensions.ts';
import { generateKeyPair, spkiDer } from '../server/src/pki/keys.ts';
import { decodeName, encodeName, formatName } from '../server/src/pki/names.ts';
import { OID } from '../server/src/pki/oids.ts';
import { KeyObjectSigner } from '../server/src/pki/signer.ts';
import { tempDir } from './helpers/temp-dir.ts';

const run = promisify(execFile);
const NOW = Date.now();

async function authority(): Promise<CertificateAuthority> {
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const der = await createRootCertificate({ subject: [{ type: OID.organizationName, value: 'acme' }, { type: OID.commonName, value: 'acme device CA' }], signer, notBefore: new Date(NOW - 60_000), notAfter: new Date(NOW + 86_400_000) });
  return loadAuthority(der, signer);
}

interface Shape {
  serial?: bigint;
  notBefore?: Date;
  notAfter?: Date;
  extensions?: EncodedExtension[];
  subject?: Buffer;
}

/** A certificate of `ca`, shaped as a test needs (the PKI core's encoder, no profile). */
async function certificate(ca: CertificateAuthority, shape: Shape = {}): Promise<Buffer> {
  const key = generateKeyPair('ec-p256');
  return signCertificate(
    {
      serial: shape.serial ?? 0x1234n,
      issuer: ca.subject,
      subject: shape.subject ?? encodeName([{ type: OID.organizationalUnitName, value: 'thermostat' }, { type: OID.commonName, value: 'thermostat-0123456789ab' }]).der,
      notBefore: shape.notBefore ?? new Date(Math.floor(NOW / 1000) * 1000 - 60_000),
      notAfter: shape.notAfter ?? new Date(Math.floor(NOW / 1000) * 1000 + 86_400_000),
      subjectPublicKeyInfo: spkiDer(key.publicKey),
      extensions: shape.extensions ?? [basicConstraints(false), subjectAltName([{ type: 'dns', value: 'thermostat.local' }, { type: 'uri', value: 'urn:fleetgate:device:thermostat-0123456789ab' }, { type: 'uri', value: 'https://acme.example/t' }])],
    },
    ca.signer,
  );
}

/** What Node's X509Certificate (OpenSSL) reads from the same certificate, in the same form. */
function asNodeReadsIt(der: Buffer): Omit<CertificateFields, 'issuer'> & { issuer: string } {
  const x509 = new X509Certificate(der);
  const uris = (x509.subjectAltName ?? '').split(', ').filter((entry) => entry.startsWith('URI:')).map((entry) => entry.slice(4));
  const { commonName, organizationalUnit } = certificateClaims(x509);
  return { serialNumber: x509.serialNumber, notBefore: Date.parse(x509.validFrom), notAfter: Date.parse(x509.validTo), sanUris: uris, commonName, organizationalUnit, issuer: x509.issuer.split('\n').join(', ') };
}

function ours(der: Buffer): ReturnType<typeof asNodeReadsIt> {
  const fields = readCertificateFields(der);
  const issuer = formatName(decodeName(decodeSingle(fields.issuer)));
  return { ...fields, issuer };
}

test('serial, names, dates and SAN URIs are what OpenSSL reads, for UTCTime and GeneralizedTime, high-bit serials and no SAN', async (t) => {
  const ca = await authority();
  const cases: Record<string, Shape> = {
    'a device certificate': {},
    'a serial with its top bit set (a leading zero octet)': { serial: 0xf1_23_45_67_89_ab_cd_efn },
    'a one-octet serial': { serial: 1n },
    'a serial whose first octet is below 0x10': { serial: 0x0a_3fn },
    'a 20-octet serial': { serial: (1n << 158n) + 12345n },
    'dates before 2000 and after 2049 (UTCTime 99, GeneralizedTime)': { notBefore: new Date('1999-12-31T23:59:59Z'), notAfter: new Date('2061-02-28T12:00:00Z') },
    'UTCTime 49 is 2049': { notAfter: new Date('2049-06-01T00:00:00Z') },
    'no extensions at all': { extensions: [] },
    'extensions without subjectAltName': { extensions: [basicConstraints(false)] },
  };
  for (const [name, shape] of Object.entries(cases)) {
    const der = await certificate(ca, shape);
    t.deepEqual(ours(der), asNodeReadsIt(der), name);
  }
  const fields = readCertificateFields(await certificate(ca));
  t.true(fields.issuer.equals(ca.subject), 'the issuer bytes as encoded');
  t.deepEqual(fieldClaims(fields), certificateClaims(new X509Certificate(await certificate(ca))));
  t.deepEqual(deviceClaims(fieldClaims(fields)), { deviceId: 'thermostat-0123456789ab', model: 'thermostat' });
});

test('interop: a certificate made by the openssl command reads as OpenSSL reads it', async (t) => {
  const dir = await tempDir(t);
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/C=DE/O=acme/OU=cameras/CN=camera-0123456789ab', '-addext', 'subjectAltName=URI:urn:fleetgate:device:camera-0123456789ab,DNS:camera.local,IP:127.0.0.1']);
  const der = new X509Certificate(await readFile(cert)).raw;
  t.deepEqual(ours(der), asNodeReadsIt(der));
  t.deepEqual(fieldClaims(readCertificateFields(der)), { commonName: 'camera-0123456789ab', organizationalUnit: 'cameras', uris: ['urn:fleetgate:device:camera-0123456789ab'] });
});

/** `der` (serial 0x1234) with the serial's top bit set: INTEGER 0x9234, negative. */
function negativeSerial(der: Buffer): Buffer {
  const copy = Buffer.from(der);
  const at = copy.indexOf(Buffer.from([0x02, 0x02, 0x12, 0x34]));
  copy[at + 2] = 0x92;
  return copy;
}

test('what is not a certificate of that shape is refused with DER_INVALID', async (t) => {
  const ca = await authority();
  const good = await certificate(ca);
  const sanOnce = subjectAltName([{ type: 'uri', value: 'urn:a' }]);
  const utcWithoutSeconds = Buffer.from([0x17, 11, ...Buffer.from('2501010000Z', 'latin1')]);
  const cases: Record<string, Buffer> = {
    'empty input': Buffer.alloc(0),
    'truncated': good.subarray(0, good.length - 10),
    'trailing bytes': Buffer.concat([good, Buffer.from([0])]),
    'a SEQUENCE of nothing': sequence(),
    'an OCTET STRING': octetString(Buffer.from('not a certificate')),
    'a negative serial': negativeSerial(good),
    'subjectAltName twice': await certificate(ca, { extensions: [sanOnce, sanOnce] }),
    'a subject that is not a Name': await certificate(ca, { subject: utf8String('thermostat') }),
    'a subject whose value is not a string (an INTEGER)': await certificate(ca, { subject: sequence(setOf(sequence(oid(OID.commonName), integer(7n)))) }),
    'a SAN that is not GeneralNames': await certificate(ca, { extensions: [sequence(oid(OID.subjectAltName), octetString(ia5String('urn:a')))] }),
  };
  for (const [name, der] of Object.entries(cases)) {
    const error = t.throws(() => readCertificateFields(der), { instanceOf: DerError }, name);
    t.is(error?.code, 'DER_INVALID', name);
  }
  // Times: a TBSCertificate whose validity is written by hand.
  const tbsWith = (notBefore: Buffer): Buffer => sequence(sequence(explicit(0, integer(2n)), integer(1n), sequence(oid(OID.ecPublicKey)), ca.subject, sequence(notBefore, notBefore), ca.subject, sequence()), sequence(oid(OID.ecPublicKey)));
  for (const [name, time] of Object.entries({ 'UTCTime without seconds': utcWithoutSeconds, 'February 30': Buffer.from([0x17, 13, ...Buffer.from('250230000000Z', 'latin1')]), 'a local time (no Z)': Buffer.from([0x18, 14, ...Buffer.from('20250101000000', 'latin1')]), 'an INTEGER': integer(5n) })) {
    t.throws(() => readCertificateFields(tbsWith(time)), { instanceOf: DerError, message: /notBefore/ }, name);
  }
});
