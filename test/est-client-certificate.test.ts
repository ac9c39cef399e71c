import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { oid, sequence, setOf, tlv } from '../server/src/pki/der.ts';
import { OID } from '../server/src/pki/oids.ts';
import { admin } from './helpers/admin-client.ts';
import { factoryCredentials, startFleet } from './helpers/fleet.ts';
import { manufacturer, tryEnroll } from './helpers/manufacturer.ts';

/*
 * The bootstrap serial is recorded as Node writes it (the key that makes a bootstrap credential
 * single-use: a second spelling would let it be spent twice), and a manufacturer's certificate
 * with a name in an unusual string type still enrolls under its id.
 */

test('a bootstrap certificate enrolls once: its serial is recorded as Node writes it, and a second enrollment is refused', async (t) => {
  const fleet = await startFleet(t);
  const [credential] = await factoryCredentials(t, fleet, 'thermostat');
  const first = await tryEnroll(fleet, credential!);
  t.is(first.status, 200, first.text);
  const serial = new X509Certificate(credential!.certPem).serialNumber.toLowerCase();
  t.like(await fleet.server.registry.getDevice(credential!.id), { model: 'thermostat', bootstrap: { trust: 'fleetgate-factory', serial } });
  const again = await tryEnroll(fleet, credential!);
  t.is(again.status, 409, again.text);
  t.is(again.code, 'ENROLL_ALREADY_ENROLLED');
});

test('a manufacturer certificate whose CN is a UniversalString enrolls under that id', async (t) => {
  const fleet = await startFleet(t);
  const acme = await manufacturer('ACME');
  t.is((await admin(fleet, 'PUT', '/v1/trusts/acme', { body: { model: 'atm', caPem: acme.pem, namespace: 'acme.' } })).status, 200);
  const id = 'acme.atm-0001';
  // UniversalString: four octets per character, big-endian (X.680 §41).
  const universal = Buffer.alloc(id.length * 4);
  for (let index = 0; index < id.length; index++) universal.writeUInt32BE(id.charCodeAt(index), index * 4);
  const credential = await acme.device(id, { subject: sequence(setOf(sequence(oid(OID.commonName), tlv(0x1c, universal)))) });
  t.is(new X509Certificate(credential.certPem).subject, `CN=${id}`, 'OpenSSL reads the name');
  const answer = await tryEnroll(fleet, credential);
  t.is(answer.status, 200, answer.text);
  t.like(await fleet.server.registry.getDevice(id), { model: 'atm', bootstrap: { trust: 'acme', serial: new X509Certificate(credential.certPem).serialNumber.toLowerCase() } });
});
