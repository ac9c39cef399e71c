import test from 'ava';
import { once, type EventEmitter } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS, ERROR_CODE_HEADER } from '../device-sdk/src/protocol.ts';
import { SHUTDOWN_GRACE_MS } from '../server/src/server.ts';
import { createRootCertificate, issueCertificate, loadAuthority } from '../server/src/pki/ca.ts';
import { generateKeyPair, privateKeyToPem, spkiDer } from '../server/src/pki/keys.ts';
import { OID } from '../server/src/pki/oids.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { KeyObjectSigner } from '../server/src/pki/signer.ts';
import { admin } from './helpers/admin-client.ts';
import { crlListsSerial } from './helpers/crl.ts';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor } from './helpers/wait.ts';

test('only operator certificates reach the admin API: none 401, a device 403, the operator 200', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const anonymous = await admin(fleet, 'GET', '/v1/devices', { anonymous: true });
  t.is(anonymous.status, 401);
  t.is(anonymous.json<{ error: { code: string } }>().error.code, 'ADMIN_CLIENT_CERT_REQUIRED');
  const asDevice = await admin(fleet, 'GET', '/v1/devices', { cert: device!.operational.certPem, key: device!.operational.keyPem });
  t.is(asDevice.status, 403);
  t.is(asDevice.json<{ error: { code: string } }>().error.code, 'ADMIN_NOT_OPERATOR');
  const asOperator = await admin(fleet, 'GET', '/v1/devices');
  t.is(asOperator.status, 200);
  t.deepEqual(asOperator.json<{ devices: { id: string }[] }>().devices.map((entry) => entry.id), [device!.id]);
  t.is((await admin(fleet, 'GET', '/v1/nothing')).status, 404);
  t.is((await admin(fleet, 'DELETE', '/v1/devices')).status, 405);
  const bad = await admin(fleet, 'GET', '/v1/devices?state=lost');
  t.is(bad.status, 400);
  t.is(bad.json<{ error: { code: string } }>().error.code, 'ADMIN_BAD_REQUEST');
  // Search by id prefix and order (the dashboard's device list), validated like the other filters.
  const ids = async (path: string): Promise<string[]> => (await admin(fleet, 'GET', path)).json<{ devices: { id: string }[] }>().devices.map((entry) => entry.id);
  t.deepEqual(await ids(`/v1/devices?prefix=${device!.id.slice(0, 5)}&order=desc`), [device!.id]);
  t.deepEqual(await ids('/v1/devices?prefix=zz'), []);
  for (const query of ['prefix=Camera', 'prefix=', 'prefix=a%2Fb', 'order=up']) {
    const refused = await admin(fleet, 'GET', `/v1/devices?${query}`);
    t.is(refused.status, 400, query);
    t.is(refused.json<{ error: { code: string } }>().error.code, 'ADMIN_BAD_REQUEST', query);
  }
});

test('the device list sorted by state, model or expiry: pages follow the order with ids breaking ties, both ways, with filters; bad sorts and cursors are 400', async (t) => {
  const fleet = await startFleet(t);
  const cameras = await enrolledDevices(t, fleet, 'camera', 3);
  const thermostats = await enrolledDevices(t, fleet, 'thermostat', 2);
  const all = [...cameras, ...thermostats].map((device) => device.id);
  const disabled = thermostats[0]!.id;
  t.is((await admin(fleet, 'POST', `/v1/devices/${disabled}/disable`, { body: {} })).status, 200);
  type Page = { devices: { id: string; state: string; model: string; certNotAfter: string }[]; next?: string };
  /** Every page of a query, two devices a page, following `next`. */
  const pages = async (query: string): Promise<Page['devices']> => {
    const seen: Page['devices'] = [];
    for (let after: string | undefined, round = 0; round < 10; round++) {
      const answer = await admin(fleet, 'GET', `/v1/devices?${query}&limit=2${after ? `&after=${after}` : ''}`);
      t.is(answer.status, 200, answer.body.toString());
      const page = answer.json<Page>();
      seen.push(...page.devices);
      if (!page.next) return seen;
      after = page.next;
    }
    throw new Error('more than 10 pages');
  };
  const byModel = await pages('sort=model');
  const expected = [...cameras.map((device) => device.id).sort(), ...thermostats.map((device) => device.id).sort()];
  t.deepEqual(byModel.map((device) => device.id), expected, 'camera before thermostat, ids breaking ties');
  t.deepEqual((await pages('sort=model&order=desc')).map((device) => device.id), [...expected].reverse());
  // State: the disabled one first ("disabled" < "enrolled"), then the others by id; and a filter applies.
  const byState = await pages('sort=state');
  t.deepEqual(byState.map((device) => device.id), [disabled, ...all.filter((id) => id !== disabled).sort()]);
  t.deepEqual((await pages('sort=state&model=thermostat')).map((device) => device.id), [disabled, thermostats[1]!.id]);
  const byExpiry = await pages('sort=expires&order=desc');
  const expiries = byExpiry.map((device) => Date.parse(device.certNotAfter));
  t.deepEqual(expiries, [...expiries].sort((a, b) => b - a));
  t.is(byExpiry.length, all.length);
  // The order follows changes: revoke a camera and it moves to the end of the state order.
  t.is((await admin(fleet, 'POST', `/v1/devices/${cameras[0]!.id}/revoke`, { body: {} })).status, 200);
  await waitFor(async () => (await pages('sort=state')).at(-1)?.id === cameras[0]!.id, { what: 'the revoked camera last in state order' });
  for (const query of ['sort=name', 'sort=', 'sort=state&after=camera-unknown-device']) {
    const refused = await admin(fleet, 'GET', `/v1/devices?${query}`);
    t.is(refused.status, 400, query);
    t.is(refused.json<{ error: { code: string } }>().error.code, 'ADMIN_BAD_REQUEST', query);
  }
});

test('device show, revoke (live session closed, CRL updated and verified by openssl), audit', async (t) => {
  const fleet = await startFleet(t);
  const [device, other] = await enrolledDevices(t, fleet, 'camera', 2);
  const client = await connectMqtt(t, fleet, device!.operational);
  const shown = await admin(fleet, 'GET', `/v1/devices/${device!.id}`);
  t.is(shown.status, 200);
  const detail = shown.json<{ device: { state: string; certSerial: string }; certificates: { serial: string }[]; history: { type: string }[] }>();
  t.is(detail.device.state, 'enrolled');
  t.deepEqual(detail.certificates.map((certificate) => certificate.serial), [detail.device.certSerial]);
  t.deepEqual(detail.history.map((entry) => entry.type), ['enrolled']);

  const crlBefore = await estRequest({ url: fleet.estUrl, path: '/crl', ca: fleet.rootPem });
  t.is(crlBefore.status, 200);
  // When the session closed, taken at the event: the revoke answer itself waits for the CRL.
  const closedAt = once(client as unknown as EventEmitter, 'close').then(() => performance.now());
  const started = performance.now();
  const revoked = await admin(fleet, 'POST', `/v1/devices/${device!.id}/revoke`, { body: { reason: 'keyCompromise' } });
  t.is(revoked.status, 200);
  t.true(crlListsSerial(await fleet.server.crl.crl(), detail.device.certSerial), 'the CRL lists the certificate as soon as the revocation is answered');
  t.true((await closedAt) - started < 1000, 'live session closed within a second');
  t.is((await admin(fleet, 'POST', `/v1/devices/${device!.id}/enable`)).status, 409, 'revocation is final');
  t.is((await admin(fleet, 'POST', '/v1/devices/camera-000000000000/disable')).status, 404);

  // openssl verifies the published CRL and rejects the certificate.
  const dir = await tempDir(t);
  const crl = await estRequest({ url: fleet.estUrl, path: '/crl', ca: fleet.rootPem });
  t.is(crl.headers['content-type'], 'application/pkix-crl');
  await writeFile(join(dir, 'crl.der'), crl.body);
  await run('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-out', join(dir, 'crl.pem')]);
  const verified = await run('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-CAfile', fleet.layout.authorityCert('issuing'), '-noout', '-verify', '-text']);
  t.is(verified.code, 0, verified.stderr);
  t.regex(verified.stderr + verified.stdout, /verify OK/);
  t.regex(verified.stdout, new RegExp(detail.device.certSerial.toUpperCase()));
  t.regex(verified.stdout, /Key Compromise/);
  const numberOf = (text: string): number => Number(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1]);
  const before = await run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: crlBefore.body });
  t.true(numberOf(verified.stdout) > numberOf(before.stdout), 'cRLNumber increases');

  await writeFile(join(dir, 'revoked.pem'), device!.operational.certPem.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n');
  await writeFile(join(dir, 'other.pem'), other!.operational.certPem.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n');
  await writeFile(join(dir, 'chain.pem'), `${fleet.rootPem}${await import('node:fs/promises').then((fs) => fs.readFile(fleet.layout.authorityCert('issuing'), 'utf8'))}`);
  const check = (file: string) => run('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'chain.pem'), '-CRLfile', join(dir, 'crl.pem'), join(dir, file)]);
  const revokedCheck = await check('revoked.pem');
  t.not(revokedCheck.code, 0);
  t.regex(revokedCheck.stdout + revokedCheck.stderr, /certificate revoked/);
  const validCheck = await check('other.pem');
  t.is(validCheck.code, 0, validCheck.stdout + validCheck.stderr);

  const adminCrl = await admin(fleet, 'GET', '/v1/crl');
  t.is(adminCrl.status, 200);
  const audit = await admin(fleet, 'GET', `/v1/audit?device=${device!.id}&order=oldest`);
  t.deepEqual(audit.json<{ entries: { type: string; actor: string }[] }>().entries.map((entry) => entry.type), ['enrolled', 'cert-revoked', 'revoked']);
  t.true(audit.json<{ entries: { type: string; actor: string }[] }>().entries.some((entry) => entry.actor === 'operator:operator'));
  const verify = await admin(fleet, 'GET', '/v1/audit/verify');
  t.like(verify.json(), { ok: true });
});

test('disable closes the session and refuses reconnects; enable lets the device back; reset allows one more enrollment', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  const client = await connectMqtt(t, fleet, device!.operational);
  const closed = once(client as unknown as EventEmitter, 'close');
  t.is((await admin(fleet, 'POST', `/v1/devices/${device!.id}/disable`, { body: { reason: 'maintenance' } })).status, 200);
  await closed;
  t.is((await admin(fleet, 'GET', '/v1/devices?state=disabled')).json<{ devices: unknown[] }>().devices.length, 1);
  t.is((await admin(fleet, 'POST', `/v1/devices/${device!.id}/enable`)).status, 200);
  const again = await connectMqtt(t, fleet, device!.operational);
  t.true(again.connected);
  t.is((await admin(fleet, 'POST', `/v1/devices/${device!.id}/reset`)).status, 200);
  const keys = await generateDeviceKeyPair();
  const reenrolled = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(device!.id, keys)), ca: fleet.rootPem, cert: device!.bootstrap.certPem, key: device!.bootstrap.keyPem });
  t.is(reenrolled.status, 200, reenrolled.text);
});

/** A manufacturer CA made with our own PKI code, and bootstrap certificates it issues (no OU). */
async function manufacturer(name: string) {
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const now = Date.now();
  const der = await createRootCertificate({ subject: [{ type: OID.commonName, value: `${name} device CA` }], signer, notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) });
  const ca = loadAuthority(der, signer);
  const device = async (id: string): Promise<Credential> => {
    const key = generateKeyPair('ec-p256');
    const issued = await issueCertificate(ca, { subject: [{ type: OID.commonName, value: id }], subjectPublicKeyInfo: spkiDer(key.publicKey), profile: { kind: 'device', deviceIdentityUri: `urn:fleetgate:device:${id}` }, notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) });
    return { id, certPem: toPem('CERTIFICATE', issued.der), keyPem: privateKeyToPem(key.privateKey) };
  };
  return { pem: toPem('CERTIFICATE', der), device };
}

async function enroll(fleet: Fleet, credential: Credential) {
  const keys = await generateDeviceKeyPair();
  return estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
}

test('trusted manufacturer CAs: Bank A and B from CA1 enroll, Bank C from CA2 is refused; an allow-list narrows it; untrust removes it', async (t) => {
  const fleet = await startFleet(t);
  const ca1 = await manufacturer('CA1');
  const ca2 = await manufacturer('CA2');
  const bankA = await ca1.device('bank-a');
  const bankB = await ca1.device('bank-b');
  const bankC = await ca2.device('bank-c');
  t.is((await enroll(fleet, bankA)).status, 401, 'not trusted yet');

  const trusted = await admin(fleet, 'PUT', '/v1/trusts/ca1', { body: { model: 'atm', caPem: ca1.pem, allowList: ['bank-a', 'bank-c'] } });
  t.is(trusted.status, 200, trusted.body.toString());
  t.is((await enroll(fleet, bankA)).status, 200);
  t.is((await fleet.server.registry.getDevice('bank-a'))?.model, 'atm');
  const notListed = await enroll(fleet, bankB);
  t.is(notListed.status, 403, 'a trusted CA, an id it does not cover (issue #8)');
  t.is(notListed.headers[ERROR_CODE_HEADER], 'ENROLL_ID_OUTSIDE_TRUST');
  t.regex(notListed.text, /allow-list/);
  const wrongCa = await enroll(fleet, bankC);
  t.is(wrongCa.status, 401, 'listed id, but from CA2');
  t.is(wrongCa.headers[ERROR_CODE_HEADER], 'ENROLL_CLIENT_CERT_UNTRUSTED');

  const unscoped = await admin(fleet, 'PUT', '/v1/trusts/ca1', { body: { model: 'atm', caPem: ca1.pem } });
  t.is(unscoped.status, 400, 'neither namespace nor allow-list (issue #8)');
  t.is(unscoped.json<{ error: { code: string } }>().error.code, 'ADMIN_TRUST_SCOPE_REQUIRED');
  // Issue 13: changing an existing trust is explicit (replace=true).
  t.is((await admin(fleet, 'PUT', '/v1/trusts/ca1?replace=true', { body: { model: 'atm', caPem: ca1.pem, namespace: 'bank-' } })).status, 200, 'replaced by a namespace');
  t.is((await enroll(fleet, bankB)).status, 200);
  const list = await admin(fleet, 'GET', '/v1/trusts');
  t.deepEqual(list.json<{ trusts: { name: string }[] }>().trusts.map((trust) => trust.name), ['ca1']);
  t.is((await admin(fleet, 'DELETE', '/v1/trusts/ca1')).status, 200);
  t.is((await admin(fleet, 'DELETE', '/v1/trusts/ca1')).status, 404);
  t.is((await enroll(fleet, await ca1.device('bank-d'))).status, 401, 'untrusted again');

  const invalid = await admin(fleet, 'PUT', '/v1/trusts/bad', { body: { model: 'atm', caPem: 'not a certificate' } });
  t.is(invalid.status, 400);
  t.is(invalid.json<{ error: { code: string } }>().error.code, 'ADMIN_TRUST_INVALID');
  const factoryName = await admin(fleet, 'PUT', '/v1/trusts/fleetgate-factory', { body: { model: 'atm', caPem: ca1.pem } });
  t.is(factoryName.status, 400);
  t.is((await admin(fleet, 'GET', '/v1/trusts')).json<{ trusts: unknown[] }>().trusts.length, 0, 'nothing written by refused registrations');
});

test('metrics: enrollments, connections, refusals and messages move', async (t) => {
  const fleet = await startFleet(t);
  const scrape = async (): Promise<string> => (await fetch(fleet.server.metricsUrl)).text();
  const value = (text: string, prefix: string): number =>
    text.split('\n').filter((line) => line.startsWith(prefix)).reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  const before = await scrape();
  t.is(value(before, 'fleetgate_enrollments_total{'), 0);
  const [device] = await enrolledDevices(t, fleet, 'car', 1);
  const client = await connectMqtt(t, fleet, device!.operational);
  await client.publishAsync(`devices/${device!.id}/position`, '1,2', { qos: 1 });
  await client.subscribeAsync('devices/other/#').catch(() => undefined);
  // Counters move as the broker handles each packet; wait until each has reached the value it
  // should, then check that none went further.
  const after = await waitFor(
    async () => {
      const text = await scrape();
      const settled = value(text, 'fleetgate_mqtt_connected_devices') >= 1 && value(text, 'fleetgate_mqtt_messages_in_total') >= 1 && value(text, 'fleetgate_mqtt_refusals_total{code="BROKER_SUBSCRIBE_DENIED"}') >= 1;
      return settled && text;
    },
    { what: 'the connection, the message and the refused subscription in the metrics' },
  );
  t.is(value(after, 'fleetgate_enrollments_total{operation="simpleenroll",result="issued"'), 1);
  t.true(value(after, 'fleetgate_enrollment_duration_seconds_count') >= 1);
  t.is(value(after, 'fleetgate_mqtt_connected_devices'), 1);
  t.is(value(after, 'fleetgate_mqtt_connects_total'), 1);
  t.is(value(after, 'fleetgate_mqtt_messages_in_total'), 1);
  t.is(value(after, 'fleetgate_mqtt_refusals_total{code="BROKER_SUBSCRIBE_DENIED"}'), 1);
  t.true(value(after, 'fleetgate_registry_write_seconds_count') >= 1);
  t.regex(after, /fleetgate_certificates_expiring_7d \d/);
});

test('GET /v1/summary counts the fleet; GET /v1/events streams sessions starting and ending as they happen', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'camera', 2);
  const operator = { cert: await readFile(fleet.layout.operatorCert, 'utf8'), key: await readFile(fleet.layout.operatorKey, 'utf8') };
  // The stream, read as it arrives: the events seen so far, as parsed data lines.
  const events: { type: string; deviceId: string; reason?: string }[] = [];
  const stream = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpsRequest(new URL('/v1/events', fleet.server.adminUrl), { ca: fleet.rootPem, ...operator, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
  t.teardown(() => stream.destroy());
  t.is(stream.statusCode, 200);
  t.regex(String(stream.headers['content-type']), /^text\/event-stream/);
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const data = buffered.slice(0, end).split('\n').find((line) => line.startsWith('data: '));
      buffered = buffered.slice(end + 2);
      if (data) events.push(JSON.parse(data.slice(6)) as { type: string; deviceId: string });
    }
  });
  const summary = async (): Promise<{ devices: { state: string; model: string; count: number }[]; total: number; connected: number }> => (await admin(fleet, 'GET', '/v1/summary')).json();
  t.like(await summary(), { total: 2, connected: 0, devices: [{ state: 'enrolled', model: 'camera', count: 2 }] });

  const client = await connectMqtt(t, fleet, device!.operational);
  await waitFor(() => events.some((event) => event.type === 'connected' && event.deviceId === device!.id), { what: 'a connected event' });
  t.is((await summary()).connected, 1);
  t.is((await admin(fleet, 'POST', `/v1/devices/${device!.id}/disable`, { body: { reason: 'test' } })).status, 200);
  await waitFor(() => events.find((event) => event.type === 'disconnected' && event.deviceId === device!.id), { what: 'a disconnected event' });
  t.like(events.find((event) => event.type === 'disconnected'), { reason: 'BROKER_DEVICE_DISABLED' });
  client.end(true);
  await waitFor(async () => (await summary()).devices.some((entry) => entry.state === 'disabled' && entry.count === 1), { what: 'the census to count the disabled device' });
  t.is((await summary()).connected, 0);
  // Shutting down ends the open stream instead of waiting out the grace period for it.
  const ended = once(stream, 'end');
  const closing = performance.now();
  await fleet.server.close();
  await ended;
  t.true(performance.now() - closing < SHUTDOWN_GRACE_MS, 'the open event stream did not hold the shutdown');
});
