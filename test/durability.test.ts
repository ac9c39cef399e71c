import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { dataLayout } from '../server/src/datadir/layout.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import type { Registry } from '../server/src/registry/types.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, makeDataDir } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { startServeProcess } from './helpers/serve-process.ts';

const DEVICES = 200;
const KILL_AFTER = 60;
// Every request in flight at once (the listener admits 128 per source address; the rest get 429).
const CONCURRENCY = DEVICES;

test.after.always(stopSharedPostgres);

for (const engine of ['leveldb', 'postgres'] as const) {
  test(`${engine}: SIGKILL during a burst of ${DEVICES} concurrent enrollments: every certificate a client received is in the registry after restart`, async (t) => {
    const data = await makeDataDir(t);
    const devices = await factoryCredentials(t, data, 'camera', DEVICES);
    const bodies = await Promise.all(devices.map(async (device) => csrBody(await createCsr(device.id, await generateDeviceKeyPair()))));
    const url = engine === 'postgres' ? await (await sharedPostgres()).createDatabase() : undefined;
    const args = url === undefined ? [] : ['--registry', url];
    const openRegistry = (): Promise<Registry> => (url === undefined ? LevelRegistry.open(dataLayout(data.dir).registry) : PostgresRegistry.open(url));
    const serve = await startServeProcess(t, data.dir, data.rootPem, { args });

    // A pool of concurrent clients keeps requests arriving while the server is killed, so some are
    // cut between signing and recording, some between recording and the response.
    const receivedBodies: string[] = [];
    let failures = 0;
    let killed = false;
    let next = 0;
    const exited = once(serve.child, 'exit');
    const client = async (): Promise<void> => {
      while (next < devices.length) {
        const index = next++;
        const device = devices[index];
        if (!device) return;
        try {
          const response = await estRequest({ url: serve.estUrl, path: EST_PATHS.simpleenroll, body: bodies[index], ca: data.rootPem, cert: device.certPem, key: device.keyPem });
          if (response.status !== 200) {
            failures++;
            continue;
          }
          receivedBodies.push(response.text);
          if (!killed && receivedBodies.length >= KILL_AFTER) {
            killed = true;
            serve.child.kill('SIGKILL');
          }
        } catch {
          failures++; // refused or reset by the kill
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    await exited;
    t.true(killed, 'the server was killed mid-burst');
    const received = receivedBodies.map((body) => certificatesFromCertsOnly(body)[0] as Buffer);
    t.true(received.length >= KILL_AFTER);
    t.true(failures > 0, 'some requests were cut off by the kill');
    t.log(`received ${received.length} certificates, ${failures} requests cut off by the kill`);

    // "Restart": the registry opens (the lock died with the process) and holds every certificate.
    const registry = await openRegistry();
    t.teardown(() => registry.close());
    for (const der of received) {
      const serial = new X509Certificate(der).serialNumber.toLowerCase().replace(/^0+/, '');
      const record = await registry.getCertificate(serial);
      t.truthy(record, `certificate ${serial} recorded`);
      t.is(record?.der, der.toString('base64'));
      t.is((await registry.getDevice(record?.deviceId ?? ''))?.certSerial, serial);
    }
    t.true((await registry.verifyAudit()).ok, 'audit chain intact after the crash');
    await registry.close();

    // And the server itself comes back on the same data.
    const restarted = await startServeProcess(t, data.dir, data.rootPem, { args });
    const survivor = devices.find((device) => !received.some((der) => new X509Certificate(der).subject.includes(device.id)));
    if (survivor) {
      const response = await estRequest({ url: restarted.estUrl, path: EST_PATHS.simpleenroll, body: bodies[devices.indexOf(survivor)], ca: data.rootPem, cert: survivor.certPem, key: survivor.keyPem });
      t.true([200, 409].includes(response.status), response.text);
    }
    restarted.child.kill('SIGTERM');
    const [code] = (await once(restarted.child, 'exit')) as [number | null];
    t.is(code, 0, `graceful shutdown on SIGTERM: ${restarted.output()}`);
  });
}
