import test from 'ava';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { connackCode, connectMqtt, enrolledDevices } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import type { Credential, Fleet } from './helpers/fleet.ts';
import { startFleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { metric } from './helpers/sockets.ts';

/*
 * A renewal supersedes the device's certificate on MQTT too. The current certificate connects;
 * the one the renewal replaced connects only until a session of the new one has been used (a
 * packet after its CONNACK; make before break: the SDK connects with the new certificate, taking
 * the old session over, then drops the old one, and goes back to the old one if the CONNACK does
 * not reach it); any older certificate is refused with CONNACK 5 (BROKER_CERT_SUPERSEDED).
 */

/** Renews over EST simplereenroll with `current`, as the SDK does (new key, same identity). */
async function renew(fleet: Fleet, current: Credential): Promise<Credential> {
  const keys = await generateDeviceKeyPair();
  const response = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simplereenroll, body: csrBody(await createCsr(current.id, keys)), ca: fleet.rootPem, cert: current.certPem, key: current.keyPem });
  if (response.status !== 200) throw new Error(`renewal of ${current.id} failed: ${response.text}`);
  const keyDer = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { id: current.id, certPem: certificatesFromCertsOnly(response.text).map((der) => toPem('CERTIFICATE', der)).join(''), keyPem: toPem('PRIVATE KEY', keyDer) };
}

const superseded = (fleet: Fleet): Promise<number> => metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_CERT_SUPERSEDED"}');

test('make before break: the new certificate takes the old session over; the old one is refused once the new session is used', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const first = device!.operational;
  const closed = (client: Awaited<ReturnType<typeof connectMqtt>>): Promise<void> => new Promise((resolve) => client.once('close', () => resolve()));
  const second = await renew(fleet, first);

  // Between the renewal and the first connection with the new certificate, the old one still works
  // (a device whose renewal answer was lost holds only the old one).
  const old = await connectMqtt(t, fleet, first);
  old.on('error', () => undefined);
  const oldClosed = closed(old);
  // The SDK's switch: connect with the new certificate, which takes the old session over
  // (MQTT-3.1.4-2), then drop the old one.
  const renewed = await connectMqtt(t, fleet, second);
  await oldClosed;
  t.true(renewed.connected);
  // Admitted, but the device has not used the new session yet (its CONNACK might have been lost,
  // and the SDK would go back to the old certificate): the old one still connects.
  t.is(await connackCode(fleet, first), 0); // takes the new session over
  const again = await connectMqtt(t, fleet, second);
  await again.publishAsync(`devices/${device!.id}/telemetry`, 'switched', { qos: 1 });

  // Now the old certificate is superseded: CONNACK 5, and the new session is untouched.
  t.is(await connackCode(fleet, first), 5);
  t.is(await superseded(fleet), 1);
  t.true(again.connected);
  await again.publishAsync(`devices/${device!.id}/telemetry`, 'after renewal', { qos: 1 });
});

test('a certificate two renewals old is refused even before the newest has connected', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const first = device!.operational;
  const second = await renew(fleet, first);
  const third = await renew(fleet, second);
  t.is(await connackCode(fleet, first), 5);
  t.is(await superseded(fleet), 1);
  // The previous (second) is still admitted until the current (third) connects.
  t.is(await connackCode(fleet, second), 0);
  const current = await connectMqtt(t, fleet, third);
  await current.subscribeAsync(`devices/${device!.id}/commands/#`);
  t.is(await connackCode(fleet, second), 5);
  t.is(await superseded(fleet), 2);
});
