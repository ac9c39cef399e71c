import test from 'ava';
import type { IClientOptions } from 'mqtt';
import { createSecureContext, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { MqttConnector, ConnectError } from '../device-sdk/src/connector.ts';
import { createCsr } from '../device-sdk/src/csr.ts';
import { EstClient } from '../device-sdk/src/est-client.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { generateDeviceKeyPair } from '../device-sdk/src/webcrypto-keys.ts';
import { enrolledDevices } from './helpers/device.ts';
import { factoryCredentials, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';

/*
 * The device SDK hands Node's server name check the leaf certificate instead of the whole chain
 * (device-sdk/src/server-identity.ts, a CPU saving): the check itself must still refuse a server
 * whose certificate names another host, on EST and on MQTT, and the socket must be Node's again
 * after the handshake.
 */

/** The fleet's server certificate names localhost, 127.0.0.1 and ::1; this IPv4-mapped address reaches the same listener under another name. */
const ELSEWHERE = '[::ffff:127.0.0.1]';

function connectCredential(fleet: Fleet, credential: Credential) {
  return { secureContext: createSecureContext({ ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem }) };
}

test('EST: a server certificate that does not name the host is refused; the right name enrolls', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  const keys = await generateDeviceKeyPair();
  const csr = await createCsr(bootstrap!.id, keys);
  const publicKey = Buffer.from(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey));
  const port = new URL(fleet.estUrl).port;
  const wrongName = new EstClient({ url: `https://${ELSEWHERE}:${port}`, root: fleet.rootPem });
  const refused = await t.throwsAsync(wrongName.simpleEnroll({ cert: bootstrap!.certPem, key: bootstrap!.keyPem }, csr, publicKey), { instanceOf: SdkError });
  t.is(refused?.code, 'SDK_NETWORK');
  t.regex(refused?.message ?? '', /IP: ::ffff:7f00:1 is not in the cert's list/);
  t.not(await fleet.server.registry.getDevice(bootstrap!.id).then((device) => device?.state), 'enrolled', 'nothing was enrolled');
  const enrolled = await new EstClient({ url: fleet.estUrl, root: fleet.rootPem }).simpleEnroll({ cert: bootstrap!.certPem, key: bootstrap!.keyPem }, csr, publicKey);
  t.truthy(enrolled.certificate);
});

test('MQTT: a server certificate that does not name the host is refused; after a handshake the socket reports the whole chain again', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const wrongName = new MqttConnector(device!.id, fleet.rootPem, {});
  t.teardown(() => wrongName.end(true));
  const refused = await t.throwsAsync(wrongName.connect(connectCredential(fleet, device!.operational), `mqtts://${ELSEWHERE}:${fleet.server.mqttPort}`), { instanceOf: ConnectError });
  t.regex(refused?.message ?? '', /is not in the cert's list/);

  const connector = new MqttConnector(device!.id, fleet.rootPem, {});
  t.teardown(() => connector.end(true));
  await connector.connect(connectCredential(fleet, device!.operational), `mqtts://127.0.0.1:${fleet.server.mqttPort}`);
  const chain = (connector.mqtt?.stream as TLSSocket).getPeerCertificate(true);
  t.truthy(chain.issuerCertificate, 'getPeerCertificate(true) is Node\'s own after the handshake');
});

test('MQTT: a custom checkServerIdentity still gets the whole chain', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const seen: Array<PeerCertificate | DetailedPeerCertificate> = [];
  // MQTT.js passes its options on to tls.connect; its types do not list this one.
  const options = {
    checkServerIdentity: (_host: string, certificate: PeerCertificate) => {
      seen.push(certificate);
      return undefined;
    },
  } as Partial<IClientOptions>;
  const connector = new MqttConnector(device!.id, fleet.rootPem, options);
  t.teardown(() => connector.end(true));
  await connector.connect(connectCredential(fleet, device!.operational), `mqtts://127.0.0.1:${fleet.server.mqttPort}`);
  t.is(seen.length, 1);
  t.truthy((seen[0] as DetailedPeerCertificate).issuerCertificate, 'the chain, as Node builds it');
});
