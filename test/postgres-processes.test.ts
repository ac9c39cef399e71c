import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { serialKey } from '../server/src/pki/serial.ts';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, makeDataDir } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { startServeProcess, type ServeProcess } from './helpers/serve-process.ts';

/*
 * Several `fleetgate serve` processes on one PostgreSQL registry, as a cluster runs them: every
 * guarantee of the single-process registry must hold across them.
 */

test.after.always(stopSharedPostgres);

const PROCESSES = 4;
const PER_PROCESS = 250;
/** Requests in flight at once against each process. */
const CONCURRENCY = 25;
/** Devices each process revokes while the enrollments go on. */
const REVOKED_PER_PROCESS = 10;

test(`${PROCESSES} processes x ${PER_PROCESS} concurrent enrollments plus revocations: audit verify passes (one chain, no fork, no gap), every issued certificate recorded`, async (t) => {
  t.timeout(240_000);
  const data = await makeDataDir(t);
  const url = await (await sharedPostgres()).createDatabase();
  const devices = await factoryCredentials(t, data, 'thermostat', PROCESSES * PER_PROCESS);
  const bodies = await Promise.all(devices.map(async (device) => csrBody(await createCsr(device.id, await generateDeviceKeyPair()))));
  const servers: ServeProcess[] = await Promise.all(Array.from({ length: PROCESSES }, () => startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', url], adminPort: true })));

  // Each process enrolls its share; as soon as one of its devices has a certificate, another
  // process revokes it (up to REVOKED_PER_PROCESS each): revocations race enrollments elsewhere.
  const received = new Map<string, Buffer>();
  const revoked = new Set<string>();
  const failures: string[] = [];
  const revocations: Promise<void>[] = [];
  await Promise.all(
    servers.map(async (server, index) => {
      const share = devices.slice(index * PER_PROCESS, (index + 1) * PER_PROCESS);
      const revoker = servers[(index + 1) % PROCESSES] as ServeProcess;
      let next = 0;
      let revokedHere = 0;
      const client = async (): Promise<void> => {
        while (next < share.length) {
          const device = share[next++];
          if (!device) return;
          const response = await estRequest({ url: server.estUrl, path: EST_PATHS.simpleenroll, body: bodies[devices.indexOf(device)], ca: data.rootPem, cert: device.certPem, key: device.keyPem });
          if (response.status !== 200) {
            failures.push(`${device.id}: ${response.status} ${response.text}`);
            continue;
          }
          received.set(device.id, certificatesFromCertsOnly(response.text)[0] as Buffer);
          if (revokedHere < REVOKED_PER_PROCESS) {
            revokedHere++;
            revocations.push(
              admin({ layout: data.layout, rootPem: data.rootPem, server: { adminUrl: revoker.adminUrl } }, 'POST', `/v1/devices/${device.id}/revoke`, { body: { reason: 'keyCompromise' } }).then((answer) => {
                if (answer.status === 200) revoked.add(device.id);
                else failures.push(`revoke ${device.id}: ${answer.status} ${answer.body.toString()}`);
              }),
            );
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, client));
    }),
  );
  await Promise.all(revocations);
  t.deepEqual(failures, []);
  t.is(received.size, PROCESSES * PER_PROCESS);
  t.is(revoked.size, PROCESSES * REVOKED_PER_PROCESS);

  // The operator's own check, through the admin API of one process: one strict chain.
  const verify = await fleetgate(['audit', 'verify', '--server', servers[2]?.adminUrl ?? '', '--data', data.dir, '--json']);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  const verification = JSON.parse(verify.stdout) as { ok: boolean; entries: number };
  t.true(verification.ok);
  // Every enrollment, and each revocation with its certificate's revocation (the operator
  // certificate recorded at its first use is not audited).
  t.is(verification.entries, PROCESSES * PER_PROCESS + 2 * PROCESSES * REVOKED_PER_PROCESS);

  // Every certificate a client received is recorded, whole, as its device's current one.
  const registry = await PostgresRegistry.open(url);
  t.teardown(() => registry.close());
  for (const [id, der] of received) {
    const serial = serialKey(new X509Certificate(der).serialNumber);
    const record = await registry.getCertificate(serial);
    t.is(record?.der, der.toString('base64'), `certificate of ${id}`);
    const device = await registry.getDevice(id);
    t.is(device?.certSerial, serial);
    t.is(device?.state, revoked.has(id) ? 'revoked' : 'enrolled');
  }
  const audit = await registry.readAudit({ types: ['enrolled'] });
  t.is(audit.length, PROCESSES * PER_PROCESS, 'one enrollment entry per device');
  t.is(new Set(audit.map((entry) => entry.deviceId)).size, PROCESSES * PER_PROCESS);
  t.is((await registry.readAudit({ types: ['revoked'] })).length, PROCESSES * REVOKED_PER_PROCESS);

  for (const server of servers) server.child.kill('SIGTERM');
  const codes = await Promise.all(servers.map(async (server) => ((await once(server.child, 'exit')) as [number | null])[0]));
  t.deepEqual(codes, servers.map(() => 0));
});
