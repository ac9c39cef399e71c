import test from 'ava';
import type { TLSSocket } from 'node:tls';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { deviceIdentityUri, EST_PATHS } from '../device-sdk/src/protocol.ts';
import { createRootCertificate, issueCertificate, loadAuthority } from '../server/src/pki/ca.ts';
import { generateKeyPair, privateKeyToPem, spkiDer } from '../server/src/pki/keys.ts';
import { OID } from '../server/src/pki/oids.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { KeyObjectSigner } from '../server/src/pki/signer.ts';
import type { Metrics } from '../server/src/metrics/metrics.ts';
import { enrollWithBootstrap } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, makeDataDir, mintDeviceCredential, startFleet, testConfig, type Credential, type Fleet } from './helpers/fleet.ts';
import { rawConnect, rawExchange, rawRequest, readResponse, type RawResponse, type RawTarget } from './helpers/raw-https.ts';

/* Issue #10 (security review), EST items 1, 2, 3, 5 and 9. */

const DAY = 86_400_000;

/**
 * What an attacker can make without any fleetgate key: a self-signed certificate, expired, whose
 * CN, OU and SAN copy a real device's identity.
 */
async function forgeSelfSignedExpired(id: string): Promise<Credential> {
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const subject = [
    { type: OID.organizationalUnitName, value: 'thermostat' },
    { type: OID.commonName, value: id },
  ];
  const notBefore = new Date(Date.now() - 10 * DAY);
  const notAfter = new Date(Date.now() - DAY);
  const self = loadAuthority(await createRootCertificate({ subject, signer, notBefore, notAfter }), signer);
  const forged = await issueCertificate(self, {
    subject,
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri(id) },
    notBefore,
    notAfter,
  });
  return { id, certPem: toPem('CERTIFICATE', forged.der), keyPem: privateKeyToPem(pair.privateKey) };
}

async function post(fleet: Fleet, credential: Credential | undefined, path: string, body: string) {
  return estRequest({ url: fleet.estUrl, path, body, ca: fleet.rootPem, cert: credential?.certPem, key: credential?.keyPem });
}

async function csrFor(id: string): Promise<string> {
  return csrBody(await createCsr(id, await generateDeviceKeyPair()));
}

async function unaudited(metrics: Metrics, reason: string): Promise<number> {
  return (await metrics.enrollmentRefusalsUnaudited.get()).values.find((value) => value.labels.reason === reason)?.value ?? 0;
}

test('item 1: a forged self-signed expired certificate with a victim\'s CN gets 401, does not lock the victim out, and is not audited as the victim', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ est: { perIdentityPerMinute: 10 } }) });
  const [victim] = await factoryCredentials(t, fleet);
  if (!victim) throw new Error('no device');
  const forged = await forgeSelfSignedExpired(victim.id);
  const foreign = await mintDeviceCredential(await makeDataDir(t), { id: victim.id, ca: 'factory', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
  for (let attempt = 0; attempt < 12; attempt++) {
    for (const [credential, path] of [[forged, EST_PATHS.simpleenroll], [forged, EST_PATHS.simplereenroll], [foreign, EST_PATHS.simpleenroll]] as const) {
      const response = await post(fleet, credential, path, await csrFor(victim.id));
      t.is(response.status, 401, response.text);
      t.is(response.headers['fleetgate-error-code'], 'ENROLL_CLIENT_CERT_UNTRUSTED');
    }
  }
  // The real device is not locked out of enrollment nor renewal.
  const enrolled = await enrollWithBootstrap(fleet, victim);
  const renewed = await post(fleet, enrolled.operational, EST_PATHS.simplereenroll, await csrFor(victim.id));
  t.is(renewed.status, 200, renewed.text);
  // Nothing in the audit log "by" the victim but its own enrollment and renewal.
  const entries = await fleet.server.registry.readAudit({ deviceId: victim.id });
  t.deepEqual(entries.map((entry) => entry.type).sort(), ['enrolled', 'renewed']);
  t.false((await fleet.server.registry.readAudit()).some((entry) => entry.type === 'refused'), 'no refusal audited');
  t.is(await unaudited(fleet.server.metrics, 'unverified'), 36);
});

// An expired certificate the issuing CA did sign still renews within the grace: test/est-policy.test.ts.

test('item 2: anonymous and unverified refusals do not grow the audit log; they are counted in metrics', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no device');
  const forged = await forgeSelfSignedExpired(device.id);
  const before = (await fleet.server.registry.readAudit()).length;
  const body = await csrFor(device.id);
  const requests = 200;
  for (let batch = 0; batch < requests / 20; batch++) {
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, index) => post(fleet, index % 4 === 0 ? forged : undefined, index % 2 === 0 ? EST_PATHS.simpleenroll : EST_PATHS.simplereenroll, body)),
    );
    for (const response of responses) t.is(response.status, 401);
  }
  t.is((await fleet.server.registry.readAudit()).length, before, 'audit log length unchanged');
  t.is(await unaudited(fleet.server.metrics, 'anonymous'), 150);
  t.is(await unaudited(fleet.server.metrics, 'unverified'), 50);
  t.is((await fleet.server.registry.verifyAudit()).ok, true);
});

test('item 2: refusals of a verified device are audited up to est.auditRefusalsPerSourcePerMinute per address, then only counted', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ est: { auditRefusalsPerSourcePerMinute: 3 } }) });
  const [device, other] = await factoryCredentials(t, fleet, 'thermostat', 2);
  if (!device || !other) throw new Error('no devices');
  const statuses: number[] = [];
  // Refused by the transport (bad base64) and by the authority (identity mismatch).
  for (let attempt = 0; attempt < 3; attempt++) statuses.push((await post(fleet, device, EST_PATHS.simpleenroll, '!!')).status);
  for (let attempt = 0; attempt < 3; attempt++) statuses.push((await post(fleet, device, EST_PATHS.simpleenroll, await csrFor(other.id))).status);
  t.deepEqual(statuses, [400, 400, 400, 403, 403, 403]);
  const refused = (await fleet.server.registry.readAudit()).filter((entry) => entry.type === 'refused');
  t.is(refused.length, 3);
  t.true(refused.every((entry) => entry.deviceId === device.id && entry.code === 'ENROLL_BAD_BASE64'));
  t.is(await unaudited(fleet.server.metrics, 'audit-rate'), 3);
  // Issuances are always recorded.
  await enrollWithBootstrap(fleet, other);
  t.is((await fleet.server.registry.readAudit({ deviceId: other.id })).filter((entry) => entry.type === 'enrolled').length, 1);
});

test('item 3: requests refused by the per-identity limit do not spend the global enrollment budget', async (t) => {
  // Global budget: 4 enrollments, refilled about once every 17 minutes.
  const fleet = await startFleet(t, { config: testConfig({ est: { perIdentityPerMinute: 2, ratePerSecond: 0.001, rateBurst: 4 } }) });
  const [looping, first, second] = await factoryCredentials(t, fleet, 'thermostat', 3);
  if (!looping || !first || !second) throw new Error('no devices');
  const statuses: number[] = [];
  for (let attempt = 0; attempt < 10; attempt++) statuses.push((await post(fleet, looping, EST_PATHS.simpleenroll, '!!')).status);
  t.deepEqual(statuses, [400, 400, 429, 429, 429, 429, 429, 429, 429, 429]);
  // Two tokens spent by the looping device's admitted requests; two left for everybody else.
  for (const device of [first, second]) {
    const response = await post(fleet, device, EST_PATHS.simpleenroll, await csrFor(device.id));
    t.is(response.status, 200, response.text);
  }
  const third = await factoryCredentials(t, fleet);
  const exhausted = await post(fleet, third[0], EST_PATHS.simpleenroll, await csrFor(third[0]?.id ?? ''));
  t.is(exhausted.status, 429, 'the global budget still applies');
});

/** A client that sends headers, then its body one byte every `dripMs` until the server answers. */
interface SlowClient {
  /** The final response, once the server sends one. */
  readonly response: Promise<RawResponse>;
  readonly socket: TLSSocket;
}

async function slowBodyClient(target: RawTarget, path: string, bodyLength: number, dripMs: number): Promise<{ client: SlowClient; continued: Promise<void> }> {
  const socket = await rawConnect(target);
  let sawContinue: () => void = () => {};
  const continued = new Promise<void>((resolve) => (sawContinue = resolve));
  // 100 Continue is written in the same tick the server dispatches the request (Node's http server).
  const onData = (chunk: Buffer): void => {
    if (chunk.toString('latin1').includes('HTTP/1.1 ')) sawContinue();
  };
  socket.on('data', onData);
  const response = readResponse(socket, 30_000);
  socket.write(rawRequest('POST', path, ['Content-Type: application/pkcs10', `Content-Length: ${bodyLength}`, 'Expect: 100-continue']));
  let sent = 0;
  const drip = setInterval(() => {
    if (socket.destroyed || sent >= bodyLength) {
      clearInterval(drip);
      return;
    }
    sent++;
    socket.write('A');
  }, dripMs);
  socket.once('close', () => clearInterval(drip));
  void response.finally(() => {
    clearInterval(drip);
    socket.destroy();
  }).catch(() => {});
  return { client: { response, socket }, continued };
}

test('item 5: slow bodies hold no concurrency slot, are limited per source address, and are cut with 408 ENROLL_BODY_TIMEOUT', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ est: { maxConcurrent: 2, maxInProgressPerSource: 4, bodyTimeoutMs: 3000 } }) });
  const devices = await factoryCredentials(t, fleet, 'thermostat', 9);
  const real = devices.pop() as Credential;
  // Eight clients from another address (another site) drip-feed their bodies.
  const slow = await Promise.all(devices.map((device) => slowBodyClient({ url: fleet.estUrl, ca: fleet.rootPem, cert: device.certPem, key: device.keyPem, localAddress: '127.0.0.2' }, EST_PATHS.simpleenroll, 800, 100)));
  t.teardown(() => slow.forEach(({ client }) => client.socket.destroy()));
  await Promise.all(slow.map(({ continued }) => continued));
  // Every slow request has been dispatched; the real device enrolls meanwhile.
  const started = Date.now();
  const enrolled = await post(fleet, real, EST_PATHS.simpleenroll, await csrFor(real.id));
  t.is(enrolled.status, 200, enrolled.text);
  const responses = await Promise.all(slow.map(({ client }) => client.response));
  const byCode = (code: string) => responses.filter((response) => response.exact('Fleetgate-Error-Code') === code);
  t.is(byCode('ENROLL_RATE_LIMITED').length, 4, 'four over the per-source limit');
  const cut = byCode('ENROLL_BODY_TIMEOUT');
  t.is(cut.length, 4, 'four cut after est.bodyTimeoutMs');
  for (const response of cut) {
    t.is(response.status, 408);
    t.is(response.exact('Connection'), 'close');
  }
  t.true(Date.now() - started < 10_000);
  for (const device of devices) t.is(await fleet.server.registry.getDevice(device.id), undefined, 'nothing recorded for the slow clients');
});

test('item 9: an oversized chunked body gets 413 ENROLL_TOO_LARGE (not 500), and the server goes on', async (t) => {
  const fleet = await startFleet(t);
  const [device, next] = await factoryCredentials(t, fleet, 'thermostat', 2);
  if (!device || !next) throw new Error('no devices');
  const chunk = 'A'.repeat(4096);
  const chunks = Array.from({ length: 6 }, () => `1000\r\n${chunk}\r\n`).join('');
  const target = { url: fleet.estUrl, ca: fleet.rootPem, cert: device.certPem, key: device.keyPem };
  const response = await rawExchange(target, rawRequest('POST', EST_PATHS.simpleenroll, ['Content-Type: application/pkcs10', 'Transfer-Encoding: chunked'], `${chunks}0\r\n\r\n`));
  t.is(response.status, 413, response.text);
  t.is(response.exact('Fleetgate-Error-Code'), 'ENROLL_TOO_LARGE');
  t.is(response.exact('Connection'), 'close');
  t.regex(response.text, /^ENROLL_TOO_LARGE: /);
  t.is(await fleet.server.registry.getDevice(device.id), undefined);
  // A chunked body within the limit is read as usual.
  const csr = (await csrFor(next.id)).trim();
  const half = Math.floor(csr.length / 2);
  const parts = [csr.slice(0, half), csr.slice(half)].map((part) => `${part.length.toString(16)}\r\n${part}\r\n`).join('');
  const accepted = await rawExchange({ ...target, cert: next.certPem, key: next.keyPem }, rawRequest('POST', EST_PATHS.simpleenroll, ['Content-Type: application/pkcs10', 'Transfer-Encoding: chunked'], `${parts}0\r\n\r\n`));
  t.is(accepted.status, 200, accepted.text);
});
