import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signCertificate, serialToHex } from '../server/src/pki/certificate.ts';
import { encodeName } from '../server/src/pki/names.ts';
import { OID } from '../server/src/pki/oids.ts';
import { generateKeyPair, spkiDer } from '../server/src/pki/keys.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { formatSerial, serialKey } from '../server/src/pki/serial.ts';
import { KeyObjectSigner } from '../server/src/pki/signer.ts';
import { fleetgate } from './helpers/cli.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

/** What `openssl x509 -noout -serial` prints for a certificate file, without `serial=`. */
async function opensslSerial(file: string): Promise<string> {
  const result = await run('openssl', ['x509', '-in', file, '-noout', '-serial']);
  if (result.code !== 0) throw new Error(`openssl x509 ${file}: ${result.stderr}`);
  return result.stdout.trim().replace(/^serial=/, '');
}

test('formatSerial writes openssl\'s form from any form; serialKey gives the registry\'s key back', (t) => {
  t.is(formatSerial(0xa3n), 'A3');
  t.is(formatSerial(0xa3fn), '0A3F');
  t.is(formatSerial(1n), '01');
  for (const text of ['a3f', 'A3F', '0a3f', '0A3F', '000a3f']) t.is(formatSerial(text), '0A3F', text);
  for (const text of ['a3f', '0A3F', '000a3f']) t.is(serialKey(text), 'a3f', text);
  const serial = 0x0123456789abcdef0123456789abcdefn;
  t.is(serialKey(formatSerial(serial)), serialToHex(serial));
});

test('formatSerial equals what openssl x509 -serial prints (and Node\'s serialNumber), leading zero nibble and byte included', async (t) => {
  const dir = await tempDir(t);
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const name = encodeName([{ type: OID.commonName, value: 'serial-test' }]).der;
  // A leading zero nibble (0x0a...), a full first byte (0x7f...), a one-byte and a short odd serial.
  for (const serial of [0x0a1b2c3d4e5f60718293a4b5c6d7e8f9n, 0x7fffffffffffffffffffffffffffffffn, 0x01n, 0xabcn]) {
    const der = await signCertificate(
      { serial, issuer: name, subject: name, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), subjectPublicKeyInfo: spkiDer(pair.publicKey), extensions: [] },
      signer,
    );
    const file = join(dir, `${serial.toString(16)}.crt`);
    await writeFile(file, toPem('CERTIFICATE', der));
    t.is(formatSerial(serial), await opensslSerial(file), serial.toString(16));
    t.is(formatSerial(serial), new X509Certificate(der).serialNumber, serial.toString(16));
  }
});

test('bootstrap issue: every manifest serial (json and csv) is exactly what openssl x509 -noout -serial prints', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const out = join(dir, 'factory');
  t.is((await fleetgate(['init', '--data', data])).code, 0);
  const issued = await fleetgate(['bootstrap', 'issue', '--data', data, '--model', 'thermostat', '--count', '12', '--out', out]);
  t.is(issued.code, 0, issued.stderr);
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { devices: { id: string; serial: string }[] };
  t.is(manifest.devices.length, 12);
  const csv = (await readFile(join(out, 'manifest.csv'), 'utf8')).trimEnd().split('\n').slice(1);
  for (const [index, device] of manifest.devices.entries()) {
    t.is(device.serial, await opensslSerial(join(out, `${device.id}.crt`)), device.id);
    t.is(csv[index]?.split(',')[2], device.serial, `${device.id} in manifest.csv`);
  }
});
