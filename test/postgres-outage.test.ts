import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { serialKey } from '../server/src/pki/serial.ts';
import { admin } from './helpers/admin-client.ts';
import { connackCode, enrolledDevices } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, mintDeviceCredential, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { startPostgres } from './helpers/postgres.ts';
import { waitFor } from './helpers/wait.ts';

/*
 * PostgreSQL down under a running fleetgate: refusals that say "retry", never a hang, a crash, a
 * half-written record or a CONNACK 5; and everything resumes when the database returns, without
 * a restart.
 */

async function enroll(fleet: Fleet, bootstrap: Credential, body: string) {
  return estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body, ca: fleet.rootPem, cert: bootstrap.certPem, key: bootstrap.keyPem });
}

async function readyStatus(fleet: Fleet): Promise<number> {
  return (await fetch(new URL('/readyz', fleet.server.metricsUrl))).status;
}

test('PostgreSQL down: EST 503 with Retry-After, known devices admitted, unknown ones CONNACK 3, admin API 503, /readyz 503; all resumes when it returns', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  const fleet = await startFleet(t, { registryUrl: await postgres.createDatabase() });
  const [known] = await enrolledDevices(t, fleet, 'thermostat', 1);
  if (!known) throw new Error('no device');
  const [waiting] = await factoryCredentials(t, fleet, 'thermostat', 1);
  if (!waiting) throw new Error('no bootstrap credential');
  const body = csrBody(await createCsr(waiting.id, await generateDeviceKeyPair()));
  // A valid operational certificate of an id this registry never enrolled.
  const stranger = await mintDeviceCredential(fleet, { id: 'thermostat-stranger', ca: 'issuing' });
  t.is(await connackCode(fleet, stranger), 5, 'unknown while the registry answers: not authorized');

  await postgres.stop();

  const started = performance.now();
  const refused = await enroll(fleet, waiting, body);
  t.is(refused.status, 503, refused.text);
  t.regex(refused.text, /ENROLL_UNAVAILABLE/);
  t.truthy(refused.headers['retry-after']);
  t.true(performance.now() - started < 5_000, 'answered, not hung');
  const outageStarted = new Date().toISOString();
  t.is(await connackCode(fleet, known.operational), 0, 'a device whose state the broker knows is admitted');
  t.is(await connackCode(fleet, stranger), 3, 'an unknown device: server unavailable, not "not authorized"');
  const listing = await admin(fleet, 'GET', '/v1/devices');
  t.is(listing.status, 503, listing.body.toString());
  t.is(listing.json<{ error: { code: string } }>().error.code, 'ADMIN_UNAVAILABLE');
  t.is(await readyStatus(fleet), 503);

  await postgres.start();

  // No restart: the same server enrolls again once its pool reconnects.
  const answer = await waitFor(async () => {
    const response = await enroll(fleet, waiting, body);
    return response.status === 200 ? response : undefined;
  }, { what: 'EST to enroll again after PostgreSQL returned', timeoutMs: 20_000, intervalMs: 200 });
  const serial = serialKey(new X509Certificate(certificatesFromCertsOnly(answer.text)[0] as Buffer).serialNumber);
  t.is((await fleet.server.registry.getDevice(waiting.id))?.certSerial, serial);
  t.true((await fleet.server.registry.verifyAudit()).ok);
  await waitFor(async () => (await readyStatus(fleet)) === 200, { what: '/readyz to answer 200 again' });
  t.is((await admin(fleet, 'GET', '/v1/devices')).status, 200);
  t.is(await connackCode(fleet, stranger), 5, 'unknown again, and the registry answers: not authorized');
  // Presence seen during the outage was kept and written once the database returned.
  await waitFor(async () => ((await fleet.server.registry.getPresence(known.id))?.lastSeen ?? '') >= outageStarted, { what: "the known device's presence from the outage to be written" });
});
