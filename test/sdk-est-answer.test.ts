import test from 'ava';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { EstClient } from '../device-sdk/src/est-client.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { deviceIdentityUri } from '../device-sdk/src/protocol.ts';
import { loadAuthorityFromDataDir } from '../server/src/datadir/authorities.ts';
import { issueCertificate } from '../server/src/pki/ca.ts';
import { bitString, oid, sequence } from '../server/src/pki/der.ts';
import { generateKeyPair, spkiDer } from '../server/src/pki/keys.ts';
import { OID } from '../server/src/pki/oids.ts';
import { certsOnly } from '../server/src/pki/pkcs7.ts';
import { makeDataDir, mintDeviceCredential } from './helpers/fleet.ts';

/*
 * What the SDK's EST client accepts as the answer to an enrollment: a certificate that carries the
 * device's own key as the CSR carried it, and nothing else (SDK_CERT_KEY_MISMATCH).
 * A real HTTPS server on loopback, with the data directory's server certificate, plays the EST
 * server and answers with certificates the data directory's issuing CA signed.
 */

/** The same P-256 public key in the compressed form (SEC 1 §2.3.3), which OpenSSL reads but never writes by default. */
function compressedSpki(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x as string, 'base64url');
  const y = Buffer.from(jwk.y as string, 'base64url');
  const point = Buffer.concat([Buffer.from([0x02 | ((y.at(-1) as number) & 1)]), x]);
  return sequence(sequence(oid(OID.ecPublicKey), oid(OID.prime256v1)), bitString(point));
}

test('the issued certificate must carry the device key as the CSR carried it: another key, or the same key re-encoded, is SDK_CERT_KEY_MISMATCH', async (t) => {
  const data = await makeDataDir(t);
  const issuing = await loadAuthorityFromDataDir(data.dir, 'issuing');
  const bootstrap = await mintDeviceCredential(data, { id: 'thermostat-0123456789ab', ca: 'factory' });
  const device = generateKeyPair('ec-p256');
  const other = generateKeyPair('ec-p256');
  const certify = async (subjectPublicKeyInfo: Buffer): Promise<Buffer> =>
    (
      await issueCertificate(issuing, {
        subject: [{ type: OID.commonName, value: 'thermostat-0123456789ab' }],
        subjectPublicKeyInfo,
        profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri('thermostat-0123456789ab') },
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
      })
    ).der;

  let answer: Buffer = Buffer.alloc(0);
  const server = createServer({ key: await readFile(data.layout.serverKey, 'utf8'), cert: await readFile(data.layout.serverCert, 'utf8') }, (request, response) => {
    request.resume();
    request.on('end', () => {
      t.is(request.url, EST_PATHS.simpleenroll);
      response.writeHead(200, { 'content-type': 'application/pkcs7-mime; smime-type=certs-only', 'content-transfer-encoding': 'base64' });
      response.end(`${certsOnly([answer, issuing.certificate]).toString('base64')}\n`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const est = new EstClient({ url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, root: data.rootPem });
  const credential = { cert: bootstrap.certPem, key: bootstrap.keyPem };
  const csr = Buffer.from([0x30, 0x00]); // what the server does with it does not matter here
  const deviceSpki = spkiDer(device.publicKey);

  answer = await certify(deviceSpki);
  const same = await est.simpleEnroll(credential, csr, deviceSpki);
  t.true(same.certificate.raw.equals(answer), 'the device key as the CSR carried it');
  t.true((await est.simpleEnroll(credential, csr, device.privateKey)).certificate.raw.equals(answer), 'the key given as a KeyObject');

  answer = await certify(spkiDer(other.publicKey));
  const error = await t.throwsAsync(est.simpleEnroll(credential, csr, deviceSpki), { instanceOf: SdkError });
  t.is(error?.code, 'SDK_CERT_KEY_MISMATCH');

  // The same key with its point compressed: OpenSSL writes it back compressed, so comparing its
  // export (the SDK's check until 2026-12-03) refused it as the byte comparison does now.
  const compressed = compressedSpki(device.publicKey);
  t.false(compressed.equals(deviceSpki));
  t.true(spkiDer(createPublicKey({ key: compressed, format: 'der', type: 'spki' })).equals(compressed), 'OpenSSL exports the form it read');
  answer = await certify(compressed);
  const reencoded = await t.throwsAsync(est.simpleEnroll(credential, csr, deviceSpki), { instanceOf: SdkError });
  t.is(reencoded?.code, 'SDK_CERT_KEY_MISMATCH', 'a CA must certify the key as the CSR carried it');
});

test('a certificate for the device key from a CA that does not chain to the pinned root is SDK_CERT_UNTRUSTED', async (t) => {
  const data = await makeDataDir(t);
  const foreign = await loadAuthorityFromDataDir((await makeDataDir(t)).dir, 'issuing');
  const bootstrap = await mintDeviceCredential(data, { id: 'thermostat-0123456789ab', ca: 'factory' });
  const device = generateKeyPair('ec-p256');
  const certificate = await issueCertificate(foreign, {
    subject: [{ type: OID.commonName, value: 'thermostat-0123456789ab' }],
    subjectPublicKeyInfo: spkiDer(device.publicKey),
    profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri('thermostat-0123456789ab') },
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const server = createServer({ key: await readFile(data.layout.serverKey, 'utf8'), cert: await readFile(data.layout.serverCert, 'utf8') }, (request, response) => {
    request.resume();
    request.on('end', () => response.end(`${certsOnly([certificate.der, foreign.certificate]).toString('base64')}\n`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const est = new EstClient({ url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, root: data.rootPem });
  const error = await t.throwsAsync(est.simpleEnroll({ cert: bootstrap.certPem, key: bootstrap.keyPem }, Buffer.from([0x30, 0x00]), spkiDer(device.publicKey)), { instanceOf: SdkError });
  t.is(error?.code, 'SDK_CERT_UNTRUSTED');
});
