import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { ERROR_CODE_HEADER, EST_PATHS } from '../device-sdk/src/protocol.ts';
import type { ServerConfig } from '../server/src/config/config.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { csrBody, estRequest, type EstResponse } from './helpers/est-client.ts';
import { factoryCredentials, startFleet, testConfig, type Credential, type Fleet } from './helpers/fleet.ts';
import { opensslCsr } from './helpers/openssl.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { untilClockPasses } from './helpers/wait.ts';

/** Configuration where operational certificates live two seconds (no back-dating). */
function shortLived(enrollment: Partial<ServerConfig['enrollment']>): ServerConfig {
  return testConfig({
    enrollment: { clockSkewSeconds: 0, defaultModel: { certificateLifetimeSeconds: 2 }, models: {}, ...enrollment },
  });
}

async function enroll(fleet: Fleet, credential: Credential, path: string = EST_PATHS.simpleenroll): Promise<{ response: EstResponse; operational?: Credential }> {
  const keys = await generateDeviceKeyPair();
  const response = await estRequest({ url: fleet.estUrl, path, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  if (response.status !== 200) return { response };
  const keyDer = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    response,
    operational: { id: credential.id, certPem: certificatesFromCertsOnly(response.text).map((der) => toPem('CERTIFICATE', der)).join(''), keyPem: toPem('PRIVATE KEY', keyDer) },
  };
}

/**
 * Waits until `credential`'s certificate has expired by the wall clock. The TLS layer judges
 * expiry by the real clock (CERT_HAS_EXPIRED), so an injected server clock cannot stand in here.
 */
async function untilExpired(credential: Credential): Promise<void> {
  const leaf = new X509Certificate(credential.certPem);
  await untilClockPasses(new Date(leaf.validTo), { what: `the certificate of ${credential.id} to expire (${leaf.validTo})` });
}

async function firstEnrollment(t: ExecutionContext, fleet: Fleet): Promise<{ bootstrap: Credential; operational: Credential }> {
  const [bootstrap] = await factoryCredentials(t, fleet);
  if (!bootstrap) throw new Error('no credential');
  const { response, operational } = await enroll(fleet, bootstrap);
  if (!operational) throw new Error(`enrollment failed: ${response.text}`);
  return { bootstrap, operational };
}

test('an expired operational certificate renews within the grace period', async (t) => {
  const fleet = await startFleet(t, { config: shortLived({ renewalGraceSeconds: 3600 }) });
  const { operational } = await firstEnrollment(t, fleet);
  await untilExpired(operational);
  const { response } = await enroll(fleet, operational, EST_PATHS.simplereenroll);
  t.is(response.status, 200, response.text);
  t.is((await fleet.server.registry.getDevice(operational.id))?.renewals, 1);
});

test('past the grace, renewal is refused (401 ENROLL_CLIENT_CERT_EXPIRED) and the device falls back to its bootstrap credential', async (t) => {
  const fleet = await startFleet(t, { config: shortLived({ renewalGraceSeconds: 0, bootstrapReenroll: 'after-expiry' }) });
  const { bootstrap, operational } = await firstEnrollment(t, fleet);
  const before = await fleet.server.registry.getDevice(bootstrap.id);
  await untilExpired(operational);
  const { response: renewal } = await enroll(fleet, operational, EST_PATHS.simplereenroll);
  t.is(renewal.status, 401, renewal.text);
  t.is(renewal.headers[ERROR_CODE_HEADER], 'ENROLL_CLIENT_CERT_EXPIRED');
  const { response: again } = await enroll(fleet, bootstrap);
  t.is(again.status, 200, again.text);
  const after = await fleet.server.registry.getDevice(bootstrap.id);
  t.is(after?.enrollments, 2);
  t.is((await fleet.server.registry.getCertificate(before?.certSerial ?? ''))?.status, 'revoked');
});

test('with bootstrapReenroll "never", an expired device still cannot use its bootstrap credential again (409)', async (t) => {
  // Only the enrollment authority judges this expiry (the bootstrap certificate is valid), so
  // its injected clock is moved past the operational certificate's end instead of waiting.
  let clockOffsetMs = 0;
  const fleet = await startFleet(t, { config: shortLived({ renewalGraceSeconds: 0, bootstrapReenroll: 'never' }), now: () => new Date(Date.now() + clockOffsetMs) });
  const { bootstrap } = await firstEnrollment(t, fleet);
  const enrolled = await fleet.server.registry.getDevice(bootstrap.id);
  clockOffsetMs = Date.parse(enrolled?.certNotAfter ?? '') - Date.now() + 1000;
  const { response } = await enroll(fleet, bootstrap);
  t.is(response.status, 409, response.text);
  t.is(response.headers[ERROR_CODE_HEADER], 'ENROLL_ALREADY_ENROLLED');
});

test('per-model lifetime: cars get the car lifetime, thermostats the thermostat lifetime', async (t) => {
  const fleet = await startFleet(t, {
    config: testConfig({ enrollment: { models: { car: { certificateLifetimeSeconds: 90 * 86_400 }, thermostat: { certificateLifetimeSeconds: 7 * 86_400 } } } }),
  });
  const [car] = await factoryCredentials(t, fleet, 'car');
  const [thermostat] = await factoryCredentials(t, fleet, 'thermostat');
  if (!car || !thermostat) throw new Error('no devices');
  await enroll(fleet, car);
  await enroll(fleet, thermostat);
  const days = async (id: string): Promise<number> => {
    const device = await fleet.server.registry.getDevice(id);
    return Math.round((Date.parse(device?.certNotAfter ?? '') - Date.now()) / 86_400_000);
  };
  t.is(await days(car.id), 90);
  t.is(await days(thermostat.id), 7);
});

test('Ed25519 and RSA-2048 keys are accepted only when the policy lists them', async (t) => {
  const dir = await tempDir(t);
  const strict = await startFleet(t);
  const [device] = await factoryCredentials(t, strict);
  if (!device) throw new Error('no device');
  const ed = await opensslCsr(dir, { subject: `/CN=${device.id}`, key: 'ed25519' });
  const refused = await estRequest({ url: strict.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(ed.der), ca: strict.rootPem, cert: device.certPem, key: device.keyPem });
  t.is(refused.status, 403);
  t.is(refused.headers[ERROR_CODE_HEADER], 'ENROLL_KEY_POLICY');

  const open = await startFleet(t, { config: testConfig({ enrollment: { keyKinds: ['ec-p256', 'ed25519', 'rsa'], rsaMinBits: 2048 } }) });
  const [edDevice, rsaDevice] = await factoryCredentials(t, open, 'camera', 2);
  if (!edDevice || !rsaDevice) throw new Error('no devices');
  const edCsr = await opensslCsr(dir, { subject: `/CN=${edDevice.id}`, key: 'ed25519' });
  const accepted = await estRequest({ url: open.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(edCsr.der), ca: open.rootPem, cert: edDevice.certPem, key: edDevice.keyPem });
  t.is(accepted.status, 200, accepted.text);
  const rsaCsr = await opensslCsr(dir, { subject: `/CN=${rsaDevice.id}`, key: 'rsa-2048' });
  const rsaAccepted = await estRequest({ url: open.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(rsaCsr.der), ca: open.rootPem, cert: rsaDevice.certPem, key: rsaDevice.keyPem });
  t.is(rsaAccepted.status, 200, rsaAccepted.text);
});

test('cacerts and csrattrs answer without a client certificate, in RFC 7030 formats', async (t) => {
  const fleet = await startFleet(t);
  const cacerts = await estRequest({ url: fleet.estUrl, path: EST_PATHS.cacerts, ca: fleet.rootPem });
  t.is(cacerts.status, 200);
  t.is(cacerts.headers['content-type'], 'application/pkcs7-mime; smime-type=certs-only');
  const certificates = certificatesFromCertsOnly(cacerts.text);
  t.is(certificates.length, 2, 'issuing CA and root');
  t.true(toPem('CERTIFICATE', certificates[1] as Buffer) === fleet.rootPem, 'the root as pinned');
  const csrattrs = await estRequest({ url: fleet.estUrl, path: EST_PATHS.csrattrs, ca: fleet.rootPem });
  t.is(csrattrs.status, 200);
  t.is(csrattrs.headers['content-type'], 'application/csrattrs');
  // SEQUENCE { ecdsa-with-SHA256, SEQUENCE { id-ecPublicKey, SET { prime256v1 } } }
  t.is(Buffer.from(csrattrs.text, 'base64').toString('hex'), '3021' + '06082a8648ce3d040302' + '3015' + '06072a8648ce3d0201' + '310a' + '06082a8648ce3d030107');
});
