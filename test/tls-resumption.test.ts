import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import type { MqttConnector } from '../device-sdk/src/connector.ts';
import { FleetDevice } from '../device-sdk/src/fleet-device.ts';
import { MemoryCredentialStore } from '../device-sdk/src/store.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { createCsr } from '../device-sdk/src/csr.ts';
import { generateDeviceKeyPair } from '../device-sdk/src/webcrypto-keys.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import type { CertificateInfo } from '../device-sdk/src/device-state.ts';
import { ticketWindowAt } from '../server/src/tls/ticket-keys.ts';
import { enrolledDevices } from './helpers/device.ts';
import { factoryCredentials, mintDeviceCredential, startFleet, testConfig, type Credential, type Fleet } from './helpers/fleet.ts';
import { rawConnect } from './helpers/raw-mqtt.ts';
import { run } from './helpers/run.ts';
import { metric } from './helpers/sockets.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { nextEvent, waitFor } from './helpers/wait.ts';

/*
 * TLS session resumption on the MQTT and EST listeners (docs/broker.md, "TLS session
 * resumption"): tickets from keys derived from <data>/tls/ticket.secret and the time window.
 * Across processes and nodes: tls-resumption-nodes.test.ts.
 */

const mqtt = (fleet: Fleet) => ({ port: fleet.server.mqttPort, rootPem: fleet.rootPem });

/** The server's count of completed handshakes on a listener, full or resumed. */
async function handshakes(fleet: Fleet, listener: 'mqtt' | 'est', kind: 'full' | 'resumed'): Promise<number> {
  return (await fleet.server.metrics.tlsHandshakes.get()).values.find((value) => value.labels.listener === listener && value.labels.kind === kind)?.value ?? 0;
}

test('a ticket issued before a device was disabled and revoked still resumes TLS, and every CONNECT on it is checked again', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const credential = device!.operational;
  const issued = await rawConnect(mqtt(fleet), credential);
  t.is(issued.returnCode, 0);
  t.truthy(issued.session, 'a ticket, issued while the device was in good standing');

  await fleet.server.registry.changeState({ deviceId: credential.id, to: 'disabled', actor: 'operator:test' });
  const whileDisabled = await rawConnect(mqtt(fleet), credential, issued.session);
  t.true(whileDisabled.resumed, 'the TLS session resumed: the handshake verified nothing');
  t.is(whileDisabled.returnCode, 5, 'CONNACK 5: disabled');

  await fleet.server.registry.changeState({ deviceId: credential.id, to: 'enrolled', actor: 'operator:test' });
  const enabled = await rawConnect(mqtt(fleet), credential, issued.session);
  t.true(enabled.resumed);
  t.is(enabled.returnCode, 0, 'the same ticket gets in again once enabled: the check is live, not cached in the session');

  await fleet.server.registry.changeState({ deviceId: credential.id, to: 'revoked', actor: 'operator:test' });
  const afterRevocation = await rawConnect(mqtt(fleet), credential, issued.session);
  t.true(afterRevocation.resumed, 'the ticket from before the revocation still resumes TLS');
  t.is(afterRevocation.returnCode, 5, 'CONNACK 5: revoked');
  const full = await rawConnect(mqtt(fleet), credential);
  t.false(full.resumed);
  t.is(full.returnCode, 5, 'the same answer as a full handshake');
});

test('a certificate that expired after its ticket was issued is refused on resumption: the ticket carries the first handshake\'s verification', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  // X.509 times have whole seconds; the handshake below must happen while it is still valid.
  const notAfter = new Date(Math.ceil((Date.now() + 4_000) / 1000) * 1000);
  const shortLived = await mintDeviceCredential(fleet, { id: device!.id, ca: 'issuing', notAfter });
  const issued = await rawConnect(mqtt(fleet), shortLived);
  t.truthy(issued.session, 'a ticket, issued while the certificate was valid');
  const refusals = (): Promise<number> => metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_CERT_EXPIRED"}');
  const before = await refusals();
  await waitFor(() => Date.now() > notAfter.getTime() + 1_000, { what: 'the certificate to expire', timeoutMs: 15_000 });
  const resumed = await rawConnect(mqtt(fleet), shortLived, issued.session);
  t.true(resumed.resumed, 'OpenSSL resumed the session without looking at the dates again');
  t.is(resumed.returnCode, 5);
  t.is(await refusals(), before + 1, 'refused as expired');
});

test('a resumed session keeps the client id check: a ticket of one device does not connect as another', async (t) => {
  const fleet = await startFleet(t);
  const [device, other] = await enrolledDevices(t, fleet, 'thermostat', 2);
  const issued = await rawConnect(mqtt(fleet), device!.operational);
  // The other device's client id over this device's resumed session (the session carries its certificate).
  const impostor: Credential = { ...device!.operational, id: other!.id };
  const resumed = await rawConnect(mqtt(fleet), impostor, issued.session);
  t.true(resumed.resumed);
  t.is(resumed.returnCode, 5, 'BROKER_CLIENT_ID_MISMATCH');
});

/**
 * Runs `step` until it runs within one ticket-key window (a slow machine may cross a boundary in
 * the middle); returns its result and the window.
 */
async function withinOneWindow<T>(windowSeconds: number, step: () => Promise<T>): Promise<{ result: T; window: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const window = ticketWindowAt(Date.now(), windowSeconds);
    const result = await step();
    if (ticketWindowAt(Date.now(), windowSeconds) === window) return { result, window };
  }
  throw new Error('five attempts each crossed a ticket-key window boundary');
}

test('across a key-window boundary a ticket still resumes, once, and is renewed with one of the new window; two windows on it gets a full handshake, never a refusal', async (t) => {
  const windowSeconds = 3;
  const fleet = await startFleet(t, { config: testConfig({ tls: { ticketKeyWindowSeconds: windowSeconds, sessionTimeoutSeconds: 60 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const credential = device!.operational;
  const windowNow = (): number => ticketWindowAt(Date.now(), windowSeconds);
  // Past the server's rotation timer (a few ms after the boundary), with room for a late tick.
  const intoWindow = (window: number): Promise<unknown> =>
    waitFor(() => Date.now() >= window * windowSeconds * 1000 + 300, { what: `ticket-key window ${window}`, timeoutMs: windowSeconds * 3000, intervalMs: 50 });

  // Each step must fall in the window it is meant for; a slow machine that slips starts again.
  for (let attempt = 1; ; attempt++) {
    const issued = await withinOneWindow(windowSeconds, () => rawConnect(mqtt(fleet), credential));
    t.truthy(issued.result.session, 'a ticket of window W');
    await intoWindow(issued.window + 1);
    const nextWindow = await rawConnect(mqtt(fleet), credential, issued.result.session, { renewedTicket: true });
    if (windowNow() !== issued.window + 1 && attempt < 4) continue;
    await intoWindow(issued.window + 2);
    const stale = await rawConnect(mqtt(fleet), credential, issued.result.session);
    const renewed = await rawConnect(mqtt(fleet), credential, nextWindow.session);
    if (windowNow() !== issued.window + 2 && attempt < 4) continue;

    t.true(nextWindow.resumed, 'in window W+1 the ticket of window W resumed');
    t.is(nextWindow.returnCode, 0);
    t.truthy(nextWindow.session, 'and the server renewed it with a ticket of window W+1');
    t.false(stale.resumed, 'in window W+2 the ticket of window W no longer decrypts');
    t.is(stale.returnCode, 0, 'a full handshake, not a refusal');
    t.true(renewed.resumed, 'the renewed ticket of window W+1 resumes in window W+2');
    t.is(renewed.returnCode, 0);
    return;
  }
});

/** One HTTPS GET of EST `cacerts` with a client certificate, optionally resuming a TLS session. */
function estGet(fleet: Fleet, credential: Credential, session?: Buffer): Promise<{ status: number; resumed: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const req = request(
      new URL(EST_PATHS.cacerts, fleet.estUrl),
      { ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem, agent: false, ...(session ? { session } : {}) },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, resumed: (res.socket as TLSSocket).isSessionReused(), session: ticket }));
      },
    );
    req.on('socket', (socket) => (socket as TLSSocket).on('session', (data: Buffer) => (ticket = data)));
    req.on('error', reject);
    req.end();
  });
}

test('the EST listener resumes TLS sessions too, also after its trusts are reloaded', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  const first = await estGet(fleet, bootstrap!);
  t.is(first.status, 200);
  t.truthy(first.session, 'a ticket');
  const resumedBefore = await handshakes(fleet, 'est', 'resumed');
  const second = await estGet(fleet, bootstrap!, first.session);
  t.true(second.resumed);
  t.is(await handshakes(fleet, 'est', 'resumed'), resumedBefore + 1, 'counted as resumed: fleetgate_tls_handshakes_total{listener="est",kind="resumed"}');
  // Reloading the trusted manufacturer CAs makes a new secure context: it keeps the shared keys.
  const reloaded = new Promise<void>((resolve) => {
    const stop = fleet.server.registry.onTrustChange(() => {
      stop();
      resolve();
    });
  });
  // Any CA certificate does for a trust record: only the reload matters here.
  await fleet.server.registry.putTrust({ name: 'acme', model: 'camera', caPem: fleet.rootPem, fingerprint: new X509Certificate(fleet.rootPem).fingerprint256, namespace: 'acme-', createdAt: new Date().toISOString(), actor: 'operator:test' });
  await reloaded;
  await waitFor(async () => (await estGet(fleet, bootstrap!, first.session)).resumed, { what: 'the old ticket to resume after the trust reload', timeoutMs: 5000 });
  t.pass();
});

test('EST: a bootstrap certificate that expired after its ticket was issued cannot enroll over the resumed session (ENROLL_CLIENT_CERT_EXPIRED)', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  const notAfter = new Date(Math.ceil((Date.now() + 4_000) / 1000) * 1000);
  const shortLived = await mintDeviceCredential(fleet, { id: bootstrap!.id, ca: 'factory', notAfter });
  const est = { url: fleet.estUrl, ca: fleet.rootPem, cert: shortLived.certPem, key: shortLived.keyPem };
  const first = await estRequest({ ...est, path: EST_PATHS.cacerts });
  t.is(first.status, 200);
  t.truthy(first.session, 'a ticket, issued while the certificate was valid');
  await waitFor(() => Date.now() > notAfter.getTime() + 1_000, { what: 'the certificate to expire', timeoutMs: 15_000 });
  const keys = await generateDeviceKeyPair();
  const enroll = await estRequest({ ...est, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(bootstrap!.id, keys)), session: first.session });
  t.true(enroll.resumed, 'OpenSSL resumed the session without looking at the dates again');
  t.is(enroll.headers['fleetgate-error-code'], 'ENROLL_CLIENT_CERT_EXPIRED');
  t.not(await fleet.server.registry.getDevice(bootstrap!.id).then((device) => device?.state), 'enrolled', 'nothing was issued');
  t.deepEqual(await fleet.server.registry.listCertificates(bootstrap!.id), [], 'no certificate recorded');
});

test('interop: openssl s_client saves a session and resumes it against the MQTT port (Reused, TLSv1.3)', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const dir = await tempDir(t, 'fleetgate-sclient-');
  const files = { root: join(dir, 'root.crt'), cert: join(dir, 'device-chain.pem'), key: join(dir, 'device.key'), session: join(dir, 'session.pem') };
  await writeFile(files.root, fleet.rootPem);
  await writeFile(files.cert, device!.operational.certPem);
  await writeFile(files.key, device!.operational.keyPem, { mode: 0o600 });
  // CONNECT, then DISCONNECT: the broker answers CONNACK and closes, so s_client ends by itself;
  // the TLS 1.3 ticket arrives before the CONNACK.
  const input = Buffer.concat([
    mqttPacket.generate({ cmd: 'connect', clientId: device!.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }),
    mqttPacket.generate({ cmd: 'disconnect' }),
  ]);
  const common = ['s_client', '-connect', `127.0.0.1:${fleet.server.mqttPort}`, '-servername', 'localhost', '-CAfile', files.root, '-cert', files.cert, '-key', files.key, '-ign_eof'];
  const first = await run('openssl', [...common, '-sess_out', files.session], { input });
  t.regex(first.stdout, /^New, TLSv1\.3/m, first.stderr);
  t.regex(first.stdout, /Verify return code: 0 \(ok\)/);
  const second = await run('openssl', [...common, '-sess_in', files.session], { input });
  t.regex(second.stdout, /^Reused, TLSv1\.3/m, `${second.stdout}\n${second.stderr}`);
  t.is(await handshakes(fleet, 'mqtt', 'resumed'), 1, 'the broker counted the resumption');
});

test('SDK: a reconnect offers the session of its credential and resumes; a renewed certificate starts a new session', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  const store = new MemoryCredentialStore(fleet.rootPem, { certPem: bootstrap!.certPem, key: bootstrap!.keyPem });
  const device = new FleetDevice({ deviceId: bootstrap!.id, estUrl: fleet.estUrl, mqttUrl: fleet.server.mqttUrl, store, backoff: { initialMs: 50, maxMs: 200, multiplier: 2 } });
  t.teardown(() => device.stop(true));
  const connected = () => nextEvent<[CertificateInfo]>(device, 'connected', { what: 'the device to connect' });
  const first = connected();
  await device.start();
  const [firstCertificate] = await first;
  const connector = (device as unknown as { connector: MqttConnector }).connector;
  t.false(connector.resumed, 'the first connection is a full handshake');
  const counts = async () => ({ full: await handshakes(fleet, 'mqtt', 'full'), resumed: await handshakes(fleet, 'mqtt', 'resumed') });

  // The broker drops the connection (as a node restart would): the device reconnects with its session.
  const dropped = async (): Promise<void> => {
    const again = connected();
    connector.mqtt?.stream.destroy();
    await again;
  };
  const beforeDrop = await counts();
  await dropped();
  t.true(connector.resumed, 'the reconnect resumed');
  t.deepEqual(await counts(), { full: beforeDrop.full, resumed: beforeDrop.resumed + 1 });

  const beforeRenewal = await counts();
  const renewed = nextEvent<[CertificateInfo]>(device, 'renewed', { what: 'the renewal' });
  await device.renewNow();
  const [newCertificate] = await renewed;
  t.not(newCertificate.serial, firstCertificate.serial);
  t.false(connector.resumed, 'the new certificate made a full handshake: the old session carries the old certificate');
  t.deepEqual(await counts(), { full: beforeRenewal.full + 1, resumed: beforeRenewal.resumed });

  // Connected (CONNACK 0) on a resumed session: the session is the new certificate's, or the
  // broker would have refused the old one, superseded since the new one was used (BROKER_CERT_SUPERSEDED).
  await dropped();
  t.true(connector.resumed, 'the renewed credential resumes its own session');
});
