import test from 'ava';
import { randomBytes, X509Certificate } from 'node:crypto';
import { CaBootstrapProvisioner } from '../server/src/authority/provisioners.ts';
import { createRootCertificate, issueCertificate, isIssuedBy, loadAuthority, type CertificateAuthority } from '../server/src/pki/ca.ts';
import { oid, printableString, sequence, setOf, utf8String } from '../server/src/pki/der.ts';
import { IssuerCheck } from '../server/src/pki/issuer-check.ts';
import { generateKeyPair, spkiDer } from '../server/src/pki/keys.ts';
import { OID } from '../server/src/pki/oids.ts';
import { KeyObjectSigner } from '../server/src/pki/signer.ts';

const NOW = Date.now();

async function authority(name: string): Promise<CertificateAuthority> {
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const der = await createRootCertificate({ subject: [{ type: OID.commonName, value: name }], signer, notBefore: new Date(NOW - 60_000), notAfter: new Date(NOW + 86_400_000) });
  return loadAuthority(der, signer);
}

async function device(ca: CertificateAuthority, id = 'thermostat-0123456789ab'): Promise<Buffer> {
  const key = generateKeyPair('ec-p256');
  const issued = await issueCertificate(ca, {
    subject: [{ type: OID.organizationalUnitName, value: 'thermostat' }, { type: OID.commonName, value: id }],
    subjectPublicKeyInfo: spkiDer(key.publicKey),
    profile: { kind: 'device', deviceIdentityUri: `urn:fleetgate:device:${id}` },
    notBefore: new Date(NOW - 60_000),
    notAfter: new Date(NOW + 86_400_000),
  });
  return issued.der;
}

/** The answer must be OpenSSL's (checkIssued + verify on an X509Certificate) in every case. */
function sameAsOpenSsl(t: import('ava').ExecutionContext, ca: CertificateAuthority, der: Buffer, expected: boolean): void {
  t.is(new IssuerCheck(ca.x509).issued(der), expected);
  t.is(isIssuedBy(new X509Certificate(der), ca.x509), expected);
}

test('a certificate the CA signed is issued by it; one of another CA is not', async (t) => {
  const factory = await authority('fleetgate factory CA');
  const other = await authority('acme device CA');
  sameAsOpenSsl(t, factory, await device(factory), true);
  sameAsOpenSsl(t, factory, await device(other), false);
});

test('a certificate that copies the CA name and key id but was signed by another key is refused', async (t) => {
  const factory = await authority('fleetgate factory CA');
  const impostor = await authority('fleetgate factory CA');
  // Same issuer bytes and authorityKeyIdentifier as the real CA's: only the signature tells them apart.
  const forged = await device({ ...impostor, subject: factory.subject, keyId: factory.keyId });
  sameAsOpenSsl(t, factory, forged, false);
  t.false(new CaBootstrapProvisioner('fleetgate-factory', factory.x509).recognises({ raw: forged, serialNumber: '01', validTo: '', fingerprint256: '', claims: { commonName: 'thermostat-0123456789ab', organizationalUnit: 'thermostat', uris: [] } }));
});

test('a tampered certificate or signature, or garbage, is refused', async (t) => {
  const factory = await authority('fleetgate factory CA');
  const der = await device(factory);
  const flipped = (index: number): Buffer => {
    const copy = Buffer.from(der);
    copy.writeUInt8(copy.readUInt8(index) ^ 0x01, index);
    return copy;
  };
  const tamperedBody = flipped(Math.floor(der.length / 2));
  const tamperedSignature = flipped(der.length - 3);
  t.false(new IssuerCheck(factory.x509).issued(tamperedBody));
  t.false(new IssuerCheck(factory.x509).issued(tamperedSignature));
  t.false(new IssuerCheck(factory.x509).issued(randomBytes(300)));
  t.false(new IssuerCheck(factory.x509).issued(Buffer.alloc(0)));
});

test('an authorityKeyIdentifier naming another key is refused, as OpenSSL refuses it', async (t) => {
  const factory = await authority('fleetgate factory CA');
  sameAsOpenSsl(t, factory, await device({ ...factory, keyId: randomBytes(20) }), false);
});

test('an issuer that may not sign certificates (a device certificate) issues nothing', async (t) => {
  const factory = await authority('fleetgate factory CA');
  const pair = generateKeyPair('ec-p256');
  const issued = await issueCertificate(factory, {
    subject: [{ type: OID.commonName, value: 'thermostat-0123456789ab' }],
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: { kind: 'device', deviceIdentityUri: 'urn:fleetgate:device:thermostat-0123456789ab' },
    notBefore: new Date(NOW - 60_000),
    notAfter: new Date(NOW + 86_400_000),
  });
  const leafAsCa = loadAuthority(issued.der, new KeyObjectSigner(pair.privateKey, pair.publicKey));
  sameAsOpenSsl(t, leafAsCa, await device(leafAsCa, 'thermostat-0123456789ac'), false);
});

test('an issuer name in another encoding is left to OpenSSL, which compares names canonically', async (t) => {
  const factory = await authority('factory');
  const encodedAs = (string: Buffer): Buffer => sequence(setOf(sequence(oid(OID.commonName), string)));
  // The same name as a PrintableString and as a UTF8String: two encodings, one name (RFC 5280 §7.1).
  const [printable, utf8] = [encodedAs(printableString('factory')), encodedAs(utf8String('factory'))];
  t.true(factory.subject.equals(printable) || factory.subject.equals(utf8));
  sameAsOpenSsl(t, factory, await device({ ...factory, subject: factory.subject.equals(printable) ? utf8 : printable }), true);
});
