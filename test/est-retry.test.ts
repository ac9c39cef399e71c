import test from 'ava';
import { X509Certificate, type webcrypto } from 'node:crypto';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { ERROR_CODE_HEADER, EST_PATHS } from '../device-sdk/src/protocol.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';

async function request(fleet: Fleet, path: string, credential: Credential, keys: webcrypto.CryptoKeyPair) {
  const response = await estRequest({ url: fleet.estUrl, path, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  const certificates = response.status === 200 ? certificatesFromCertsOnly(response.text) : [];
  const keyPem = toPem('PRIVATE KEY', Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey)));
  return {
    response,
    serial: certificates[0] ? new X509Certificate(certificates[0]).serialNumber : undefined,
    credential: { id: credential.id, certPem: certificates.map((der) => toPem('CERTIFICATE', der)).join(''), keyPem },
  };
}

test('a lost enrollment answer: the same credential and key get the same certificate again, nothing new is issued', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  if (!bootstrap) throw new Error('no device');
  const keys = await generateDeviceKeyPair();
  const first = await request(fleet, EST_PATHS.simpleenroll, bootstrap, keys);
  t.is(first.response.status, 200);
  const retry = await request(fleet, EST_PATHS.simpleenroll, bootstrap, keys);
  t.is(retry.response.status, 200, retry.response.text);
  t.is(retry.serial, first.serial);
  t.is((await fleet.server.registry.listCertificates(bootstrap.id)).length, 1);
  t.true((await fleet.server.registry.readAudit({ deviceId: bootstrap.id })).some((entry) => entry.type === 'resent'));
  // A different key is a second enrollment, which the policy refuses.
  const other = await request(fleet, EST_PATHS.simpleenroll, bootstrap, await generateDeviceKeyPair());
  t.is(other.response.status, 409);
  t.is(other.response.headers[ERROR_CODE_HEADER], 'ENROLL_ALREADY_ENROLLED');
});

test('renewal: only the current certificate renews; a lost renewal answer is resent to the previous certificate with the same key', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  if (!bootstrap) throw new Error('no device');
  const a = await request(fleet, EST_PATHS.simpleenroll, bootstrap, await generateDeviceKeyPair());
  const keysB = await generateDeviceKeyPair();
  const b = await request(fleet, EST_PATHS.simplereenroll, a.credential, keysB);
  t.is(b.response.status, 200, b.response.text);

  // The answer to A's renewal was "lost": A asks again with the same new key and gets B again.
  const retry = await request(fleet, EST_PATHS.simplereenroll, a.credential, keysB);
  t.is(retry.response.status, 200, retry.response.text);
  t.is(retry.serial, b.serial);

  // A with a different key is a superseded credential trying to start a new line: refused.
  const stolen = await request(fleet, EST_PATHS.simplereenroll, a.credential, await generateDeviceKeyPair());
  t.is(stolen.response.status, 403);
  t.is(stolen.response.headers[ERROR_CODE_HEADER], 'ENROLL_CERT_SUPERSEDED');

  // B renews to C; now A is two renewals back and cannot even get a resend.
  const c = await request(fleet, EST_PATHS.simplereenroll, b.credential, await generateDeviceKeyPair());
  t.is(c.response.status, 200);
  const old = await request(fleet, EST_PATHS.simplereenroll, a.credential, keysB);
  t.is(old.response.status, 403);
  t.is(old.response.headers[ERROR_CODE_HEADER], 'ENROLL_CERT_SUPERSEDED');
  t.is((await fleet.server.registry.listCertificates(bootstrap.id)).length, 3);
});
