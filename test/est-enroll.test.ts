import test from 'ava';
import { createPrivateKey, X509Certificate, type webcrypto } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { ERROR_CODE_HEADER, EST_PATHS, MEDIA_TYPES } from '../device-sdk/src/protocol.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, startFleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

const pkcs8Pem = async (key: webcrypto.CryptoKey): Promise<string> =>
  toPem('PRIVATE KEY', Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', key)));

test('a device enrolls with its bootstrap certificate, then renews with a new key', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no device');

  const keys = await generateDeviceKeyPair();
  const enrolled = await estRequest({
    url: fleet.estUrl,
    path: EST_PATHS.simpleenroll,
    body: csrBody(await createCsr(device.id, keys)),
    ca: fleet.rootPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  t.is(enrolled.status, 200, enrolled.text);
  t.is(enrolled.headers['content-type'], MEDIA_TYPES.certsOnly);
  t.is(enrolled.headers['content-transfer-encoding'], 'base64');
  const [leafDer, chainDer] = certificatesFromCertsOnly(enrolled.text);
  if (!leafDer || !chainDer) throw new Error('response lacks leaf or chain');
  const leaf = new X509Certificate(leafDer);
  t.true(leaf.subject.includes(`CN=${device.id}`));
  t.true(leaf.subject.includes('OU=thermostat'));
  t.is(leaf.subjectAltName, `URI:urn:fleetgate:device:${device.id}`);
  t.true(leaf.checkPrivateKey(createPrivateKey(await pkcs8Pem(keys.privateKey))));

  // The registry recorded the device and the certificate before the response left.
  const record = await fleet.server.registry.getDevice(device.id);
  t.is(record?.state, 'enrolled');
  t.is(record?.certSerial, leaf.serialNumber.toLowerCase().replace(/^0+/, ''));
  t.is((await fleet.server.registry.getCertificate(record?.certSerial ?? ''))?.der, leafDer.toString('base64'));

  // openssl agrees the certificate is a valid TLS client certificate under the pinned root.
  const dir = await tempDir(t);
  await writeFile(join(dir, 'leaf.pem'), toPem('CERTIFICATE', leafDer));
  await writeFile(join(dir, 'chain.pem'), toPem('CERTIFICATE', chainDer));
  const verified = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', fleet.layout.rootCert, '-untrusted', join(dir, 'chain.pem'), join(dir, 'leaf.pem')]);
  t.is(verified.code, 0, verified.stderr);

  // Renewal: authenticated by the operational certificate, new key, same identity.
  const operationalCert = toPem('CERTIFICATE', leafDer) + toPem('CERTIFICATE', chainDer);
  const newKeys = await generateDeviceKeyPair();
  const renewed = await estRequest({
    url: fleet.estUrl,
    path: EST_PATHS.simplereenroll,
    body: csrBody(await createCsr(device.id, newKeys)),
    ca: fleet.rootPem,
    cert: operationalCert,
    key: await pkcs8Pem(keys.privateKey),
  });
  t.is(renewed.status, 200, renewed.text);
  const [renewedLeaf] = certificatesFromCertsOnly(renewed.text);
  const renewedCert = new X509Certificate(renewedLeaf as Buffer);
  t.not(renewedCert.serialNumber, leaf.serialNumber);
  t.is(renewedCert.subject, leaf.subject);
  const after = await fleet.server.registry.getDevice(device.id);
  t.is(after?.renewals, 1);
  t.is(after?.certSerial, renewedCert.serialNumber.toLowerCase().replace(/^0+/, ''));
  t.is((await fleet.server.registry.getCertificate(record?.certSerial ?? ''))?.status, 'superseded');
  const audit = await fleet.server.registry.readAudit({ deviceId: device.id });
  t.deepEqual(audit.map((entry) => entry.type), ['enrolled', 'renewed']);
  t.is(enrolled.headers[ERROR_CODE_HEADER], undefined);
});
