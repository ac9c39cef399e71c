/**
 * The operator CLI against a real running server, through the real `fleetgate` executable:
 * device list/show/revoke/disable/enable/reset, bootstrap trust/list/untrust, audit and audit
 * verify, crl, operator issue and other operator credentials, and the refusals (unknown device,
 * usage errors, unreachable server, a device certificate, malformed files) with their codes.
 * Every CLI call costs a process start, so independent calls run in parallel.
 */
import test, { type ExecutionContext } from 'ava';
import { once, type EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import type { Command } from '../server/src/cli/args.ts';
import { auditCommand, auditVerifyCommand } from '../server/src/cli/commands/audit.ts';
import { bootstrapListCommand, bootstrapTrustCommand, bootstrapUntrustCommand } from '../server/src/cli/commands/bootstrap-trust.ts';
import { crlCommand } from '../server/src/cli/commands/crl.ts';
import { deviceDisableCommand, deviceEnableCommand, deviceListCommand, deviceResetCommand, deviceRevokeCommand, deviceShowCommand } from '../server/src/cli/commands/device.ts';
import { operatorIssueCommand } from '../server/src/cli/commands/operator-issue.ts';
import { parseAllowList } from '../server/src/cli/allowlist.ts';
import { parseSince } from '../server/src/cli/commands/audit.ts';
import { canonicalRevocationReason } from '../server/src/cli/commands/device.ts';
import { CliError } from '../server/src/cli/errors.ts';
import { formatSerial } from '../server/src/pki/serial.ts';
import { fleetgate, refused } from './helpers/cli.ts';
import { connackCode, connectMqtt, enrolledDevices, enrollWithBootstrap } from './helpers/device.ts';
import { crlListsSerial } from './helpers/crl.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { changedFiles, listFiles, snapshotFiles } from './helpers/files.ts';
import { factoryCredentials, makeDataDir, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { freePort } from './helpers/ports.ts';
import { run, type RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor } from './helpers/wait.ts';


/** Runs the CLI against the fleet with the data directory's operator credential. */
function cli(fleet: Fleet, args: readonly string[]): Promise<RunResult> {
  return fleetgate([...args, '--data', fleet.dir, '--server', fleet.server.adminUrl]);
}

/** A successful call's stdout, parsed as JSON. */
function jsonOf<T>(t: ExecutionContext, result: RunResult, label: string): T {
  t.is(result.code, 0, `${label}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}


interface DeviceJson {
  id: string;
  model: string;
  state: string;
  certSerial: string;
  certNotAfter: string;
  resetPending: boolean;
  stateReason?: string;
}

interface DetailJson {
  device: DeviceJson;
  connected: boolean;
  presence: { lastSeen: string } | null;
  certificates: { serial: string; status: string; revocationReason?: string }[];
  history: { type: string; actor: string }[];
}

async function enrollStatus(fleet: Fleet, credential: Credential): Promise<number> {
  const keys = await generateDeviceKeyPair();
  const response = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  return response.status;
}

// ---------------------------------------------------------------------------------------------

test('device list (all pages), show and revoke; the broker drops the revoked device and the CRL lists it', async (t) => {
  const fleet = await startFleet(t);
  const devices = await enrolledDevices(t, fleet, 'camera', 5);
  const [device] = devices;
  if (!device) throw new Error('no device');
  const client = await connectMqtt(t, fleet, device.operational);
  // Presence is written by a periodic flush (every 100 ms in tests): wait until it is there.
  await waitFor(async () => (await fleet.server.registry.getPresence(device.id))?.connected, { what: `presence "connected" of ${device.id}` });
  const ids = devices.map((entry) => entry.id).sort();

  const [paged, listed, shown, shownJson, unknown, missing, badState] = await Promise.all([
    cli(fleet, ['device', 'list', '--json', '--page-size', '2']),
    cli(fleet, ['device', 'list']),
    cli(fleet, ['device', 'show', device.id]),
    cli(fleet, ['device', 'show', device.id, '--json']),
    cli(fleet, ['device', 'show', 'camera-000000000000']),
    cli(fleet, ['device', 'revoke']),
    cli(fleet, ['device', 'list', '--state', 'lost']),
  ]);
  t.deepEqual(jsonOf<{ devices: DeviceJson[] }>(t, paged, 'list --json --page-size 2').devices.map((entry) => entry.id), ids, 'three pages of 2, 2 and 1 joined');
  t.is(listed.code, 0, listed.stderr);
  const rows = listed.stdout.trim().split('\n');
  t.regex(rows[0] ?? '', /^ID\s+MODEL\s+STATE\s+CERT EXPIRES\s+UPDATED\s+PRESENCE$/);
  t.regex(listed.stdout, new RegExp(`^${device.id}\\s.*\\sonline$`, 'm'), 'the presence column (issue 13)');
  t.deepEqual(rows.slice(1, -1).map((row) => row.split(/\s+/)[0]), ids);
  t.is(rows.at(-1), '5 devices');

  t.is(shown.code, 0, shown.stderr);
  const detail = jsonOf<DetailJson>(t, shownJson, 'show --json');
  t.is(detail.device.id, device.id);
  t.true(detail.connected, 'connected now');
  t.truthy(detail.presence?.lastSeen);
  t.deepEqual(detail.history.map((entry) => entry.type), ['enrolled']);
  t.regex(shown.stdout, new RegExp(`^device\\s+${device.id}$`, 'm'));
  t.regex(shown.stdout, /^state\s+enrolled$/m);
  // The tables print serials as openssl does (server/src/pki/serial.ts); the JSON keeps the registry's key.
  t.regex(shown.stdout, new RegExp(`^certificate\\s+serial ${formatSerial(detail.device.certSerial)}, expires ${detail.device.certNotAfter.slice(0, 10)} `, 'm'));
  t.regex(shown.stdout, /^connected\s+yes, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ from /m);
  t.regex(shown.stdout, /^last seen\s+\d{4}-/m);
  t.regex(shown.stdout, new RegExp(`^\\s+${formatSerial(detail.device.certSerial)}\\s+valid\\s`, 'm'), 'the certificates table');
  t.regex(shown.stdout, /^History:\n.*\n\s+\d+\s+\S+ \S+\s+enrolled\s+device:/m);

  refused(t, unknown, 'show of an unknown device', 1, 'ADMIN_DEVICE_NOT_FOUND', /^fleetgate: ADMIN_DEVICE_NOT_FOUND: no device camera-000000000000\n$/);
  refused(t, missing, 'revoke without ID', 2, 'CLI_USAGE', /needs ID/);
  refused(t, badState, 'list --state lost', 2, 'CLI_USAGE', /--state must be one of provisioned, enrolled, disabled, revoked/);

  // Revoke: the live MQTT session is dropped, reconnects are refused, the CRL lists the serial.
  const closed = once(client as unknown as EventEmitter, 'close');
  const revoked = await cli(fleet, ['device', 'revoke', device.id, '--reason', 'key-compromise']);
  t.is(revoked.code, 0, revoked.stderr);
  t.regex(revoked.stdout, new RegExp(`^device ${device.id} revoked \\(keyCompromise\\): `));
  await closed;
  t.is(await connackCode(fleet, device.operational), 5, 'a reconnect gets CONNACK 5');
  t.true(crlListsSerial(await fleet.server.crl.crl(), detail.device.certSerial), 'revoke returns once the CRL lists the certificate');

  const dir = await tempDir(t);
  const [again, afterJson, revokedList, crlDer, crlPem] = await Promise.all([
    cli(fleet, ['device', 'revoke', device.id]),
    cli(fleet, ['device', 'show', device.id, '--json']),
    cli(fleet, ['device', 'list', '--state', 'revoked', '--json']),
    cli(fleet, ['crl', '--out', join(dir, 'crl.der')]),
    cli(fleet, ['crl', '--out', join(dir, 'crl.pem'), '--pem']),
  ]);
  // Issue 13: revoking a revoked device is a no-op that says so (it was ADMIN_INVALID_STATE).
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, new RegExp(`^device ${device.id} already revoked \\(keyCompromise\\): nothing changed$`, 'm'));
  const after = jsonOf<DetailJson>(t, afterJson, 'show after revoke');
  t.is(after.device.state, 'revoked');
  t.is(after.device.stateReason, 'keyCompromise');
  t.like(after.certificates[0], { serial: detail.device.certSerial, status: 'revoked', revocationReason: 'keyCompromise' });
  t.deepEqual(jsonOf<{ devices: DeviceJson[] }>(t, revokedList, 'list --state revoked').devices.map((entry) => entry.id), [device.id]);

  t.is(crlDer.code, 0, crlDer.stderr);
  t.regex(crlDer.stdout, /^CRL written to .*crl\.der \(DER, \d+ bytes\)$/m);
  const issuing = fleet.layout.authorityCert('issuing');
  const verified = await run('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-verify', '-CAfile', issuing, '-noout', '-text']);
  t.is(verified.code, 0, verified.stderr);
  t.regex(verified.stderr + verified.stdout, /verify OK/);
  t.regex(verified.stdout, new RegExp(`Serial Number: 0*${detail.device.certSerial.toUpperCase()}`));
  t.regex(verified.stdout, /Key Compromise/);
  t.is(crlPem.code, 0, crlPem.stderr);
  t.true((await readFile(join(dir, 'crl.pem'), 'utf8')).startsWith('-----BEGIN X509 CRL-----\n'));
  const verifiedPem = await run('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-verify', '-CAfile', issuing, '-noout']);
  t.is(verifiedPem.code, 0, verifiedPem.stderr);
});

test('device disable closes the session until enable; reset allows one more bootstrap enrollment', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const client = await connectMqtt(t, fleet, device.operational);
  const closed = once(client as unknown as EventEmitter, 'close');
  const disabled = await cli(fleet, ['device', 'disable', device.id, '--reason', 'maintenance']);
  t.is(disabled.code, 0, disabled.stderr);
  t.regex(disabled.stdout, new RegExp(`^device ${device.id} disabled \\(maintenance\\): `));
  await closed;
  t.is(await connackCode(fleet, device.operational), 5, 'a disabled device cannot reconnect');
  const [listed, table] = await Promise.all([cli(fleet, ['device', 'list', '--state', 'disabled', '--json']), cli(fleet, ['device', 'list', '--state', 'disabled'])]);
  t.deepEqual(jsonOf<{ devices: DeviceJson[] }>(t, listed, 'list --state disabled').devices.map((entry) => [entry.id, entry.stateReason]), [[device.id, 'maintenance']]);
  t.regex(table.stdout, new RegExp(`^${device.id}\\s+thermostat\\s+disabled \\(maintenance\\)\\s`, 'm'));
  t.regex(table.stdout, /^1 device \(state disabled\)$/m);

  const enabled = await cli(fleet, ['device', 'enable', device.id, '--json']);
  t.is(jsonOf<{ device: DeviceJson }>(t, enabled, 'enable --json').device.state, 'enrolled');
  t.true((await connectMqtt(t, fleet, device.operational)).connected, 'enabled again: it connects');

  t.is(await enrollStatus(fleet, device.bootstrap), 409, 'a second bootstrap enrollment is refused before a reset');
  const reset = await cli(fleet, ['device', 'reset', device.id]);
  t.is(reset.code, 0, reset.stderr);
  t.regex(reset.stdout, /may enroll once more/);
  t.true(jsonOf<DetailJson>(t, await cli(fleet, ['device', 'show', device.id, '--json']), 'show after reset').device.resetPending);
  t.is(await enrollStatus(fleet, device.bootstrap), 200, 'after the reset the bootstrap credential enrolls once more');
});

// ---------------------------------------------------------------------------------------------

test('bootstrap trust from a PEM bundle with an allow-list from a manifest; list; untrust; bad files change nothing', async (t) => {
  const fleet = await startFleet(t);
  // The manufacturer runs its own fleetgate as factory tooling: its factory CA signs its devices.
  const acme = await makeDataDir(t);
  const dir = await tempDir(t, 'fleetgate-trust-');
  const batchDir = join(dir, 'batch');
  // Its ids carry its prefix: the fleetgate form <model>-<12 hex> is reserved for our own factory CA (issue #8).
  const issued = await fleetgate(['bootstrap', 'issue', '--data', acme.dir, '--model', 'atm', '--count', '2', '--out', batchDir, '--id-prefix', 'acme.', '--json']);
  const batch = jsonOf<{ devices: { id: string }[] }>(t, issued, 'bootstrap issue').devices.map((entry) => entry.id);
  const listedDevice = async (id: string): Promise<Credential> => ({ id, certPem: await readFile(join(batchDir, `${id}.crt`), 'utf8'), keyPem: await readFile(join(batchDir, `${id}.key`), 'utf8') });
  const [unlisted] = await factoryCredentials(t, acme, 'atm', 1, { idPrefix: 'acme.' });
  if (!unlisted) throw new Error('no credential');

  const acmeFactory = await readFile(acme.layout.authorityCert('factory'), 'utf8');
  const files = {
    bundle: join(dir, 'acme-ca.pem'),
    noRoot: join(dir, 'acme-factory-only.pem'),
    leaf: join(dir, 'leaf.pem'),
    garbage: join(dir, 'garbage.pem'),
    der: join(dir, 'acme-ca.der'),
    badList: join(dir, 'bad-list.txt'),
    textList: join(dir, 'list.txt'),
    foreignManifest: join(dir, 'foreign', 'manifest.json'),
  };
  await writeFile(files.bundle, acmeFactory + acme.rootPem);
  await writeFile(files.noRoot, acmeFactory);
  await writeFile(files.leaf, unlisted.certPem.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n');
  await writeFile(files.garbage, 'this is not a certificate\n');
  await writeFile(files.der, new X509Certificate(acmeFactory).raw);
  await writeFile(files.badList, `${batch[0]}\nNot An Id\n`);
  await writeFile(files.textList, `# ACME lot 7, one id per line\n\n${unlisted.id}\r\n`);
  // A manifest of a batch from another CA (this fleet's own factory): its factoryCa does not match.
  t.is((await fleetgate(['bootstrap', 'issue', '--data', fleet.dir, '--model', 'atm', '--count', '1', '--out', join(dir, 'foreign')])).code, 0);

  const trust = (extra: readonly string[]): Promise<RunResult> => cli(fleet, ['bootstrap', 'trust', '--name', 'acme', '--model', 'atm', ...extra]);
  const badCases: ReadonlyArray<{ name: string; args: readonly string[]; exit: number; code: string; message: RegExp }> = [
    { name: 'missing --ca', args: [], exit: 2, code: 'CLI_USAGE', message: /--ca is required/ },
    { name: 'garbage --ca', args: ['--ca', files.garbage, '--namespace', 'acme.'], exit: 1, code: 'CLI_INPUT_INVALID', message: /garbage\.pem holds no PEM certificate/ },
    { name: 'DER --ca', args: ['--ca', files.der, '--namespace', 'acme.'], exit: 1, code: 'CLI_INPUT_INVALID', message: /looks like DER/ },
    { name: 'a device certificate as --ca', args: ['--ca', files.leaf, '--namespace', 'acme.'], exit: 1, code: 'ADMIN_TRUST_INVALID', message: /not a CA certificate/ },
    { name: '--ca without the root', args: ['--ca', files.noRoot, '--namespace', 'acme.'], exit: 1, code: 'ADMIN_TRUST_INVALID', message: /chain up to its self-signed root/ },
    { name: 'bad id in the allow-list', args: ['--ca', files.bundle, '--allowlist', files.badList], exit: 1, code: 'CLI_INPUT_INVALID', message: /bad-list\.txt line 2: "Not An Id" is not a device id/ },
    { name: 'manifest of another CA', args: ['--ca', files.bundle, '--allowlist', files.foreignManifest], exit: 1, code: 'CLI_INPUT_INVALID', message: /lists devices of the CA with fingerprint .* but the first certificate of --ca/ },
  ];
  const badResults = await Promise.all(badCases.map((entry) => trust(entry.args)));
  badCases.forEach((entry, index) => refused(t, badResults[index] as RunResult, entry.name, entry.exit, entry.code, entry.message));
  t.deepEqual(jsonOf<{ trusts: unknown[] }>(t, await cli(fleet, ['bootstrap', 'list', '--json']), 'list').trusts, [], 'no refused registration was written');
  t.is(await enrollStatus(fleet, await listedDevice(batch[0] ?? '')), 401, 'not trusted yet');

  // The manifest of the batch as allow-list: its two devices enroll (as model atm), nobody else.
  const added = await trust(['--ca', files.bundle, '--allowlist', join(batchDir, 'manifest.json')]);
  t.is(added.code, 0, added.stderr);
  t.regex(added.stdout, /^added bootstrap trust acme: devices with a factory certificate from "fleetgate factory CA \w+" enroll as model atm$/m);
  t.regex(added.stdout, /^\s+allow-list\s+2 devices \(from manifest\.json\)$/m);
  for (const id of batch) await enrollWithBootstrap(fleet, await listedDevice(id));
  t.is((await fleet.server.registry.getDevice(batch[0] ?? ''))?.model, 'atm');
  t.is(await enrollStatus(fleet, unlisted), 403, 'a device of the same CA that is not on the allow-list (ENROLL_ID_OUTSIDE_TRUST since issue #8)');

  // The CSV manifest and a plain list are recognised too; each registration replaces the last.
  // Issue 13: changing an existing trust takes --replace.
  const csv = await trust(['--ca', files.bundle, '--allowlist', join(batchDir, 'manifest.csv'), '--replace']);
  t.is(csv.code, 0, csv.stderr);
  t.regex(csv.stdout, /^unchanged: bootstrap trust acme: .*\(already registered exactly so; nothing changed\)$/m, 'the CSV lists the same two devices: nothing to replace');
  t.regex(csv.stdout, /2 devices \(from manifest\.csv\)/);
  const text = await trust(['--ca', files.bundle, '--allowlist', files.textList, '--json', '--replace']);
  t.is(jsonOf<{ trust: { allowListSize: number } }>(t, text, 'trust --json').trust.allowListSize, 1);
  t.is(await enrollStatus(fleet, unlisted), 200, 'now listed');

  const [table, listJson] = await Promise.all([cli(fleet, ['bootstrap', 'list']), cli(fleet, ['bootstrap', 'list', '--json'])]);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /^NAME\s+MODEL\s+NAMESPACE\s+CA\s+FINGERPRINT\s+ALLOW-LIST\s+ADDED\s+BY$/m);
  t.regex(table.stdout, /^acme\s+atm\s+none\s+fleetgate factory CA \w+\s+[0-9A-F:]{23}\.\.\.\s+1 device\s+\S+ \S+\s+operator:operator$/m);
  const listed = jsonOf<{ trusts: { name: string; fingerprint: string; allowListSize: number }[] }>(t, listJson, 'list --json').trusts;
  t.like(listed[0], { name: 'acme', fingerprint: new X509Certificate(acmeFactory).fingerprint256, allowListSize: 1 });

  const removed = await cli(fleet, ['bootstrap', 'untrust', 'acme']);
  t.is(removed.code, 0, removed.stderr);
  t.regex(removed.stdout, /^removed bootstrap trust acme/);
  const [again, empty] = await Promise.all([cli(fleet, ['bootstrap', 'untrust', 'acme']), cli(fleet, ['bootstrap', 'list'])]);
  refused(t, again, 'untrust twice', 1, 'ADMIN_TRUST_NOT_FOUND', /no trust named acme/);
  t.regex(empty.stdout, /^no manufacturer CAs trusted/);
  const [second] = await factoryCredentials(t, acme, 'atm', 1, { idPrefix: 'acme.' });
  t.is(await enrollStatus(fleet, second as Credential), 401, 'untrusted again');
});

// ---------------------------------------------------------------------------------------------

test('audit lists what happened and who did it; audit verify exits 1 and names the entry once the chain is altered', async (t) => {
  const fleet = await startFleet(t);
  const [first, second] = await enrolledDevices(t, fleet, 'car', 2);
  if (!first || !second) throw new Error('no devices');
  t.is((await cli(fleet, ['device', 'disable', first.id, '--reason', 'stolen car'])).code, 0);

  const [all, one, table, recent, future, badSince, verified] = await Promise.all([
    cli(fleet, ['audit', '--json']),
    cli(fleet, ['audit', '--device', first.id, '--json']),
    cli(fleet, ['audit']),
    cli(fleet, ['audit', '--since', '1h', '--json']),
    cli(fleet, ['audit', '--since', '2999-01-01T00:00:00Z']),
    cli(fleet, ['audit', '--since', 'yesterday']),
    cli(fleet, ['audit', 'verify']),
  ]);
  const entries = jsonOf<{ entries: { seq: number; type: string; deviceId?: string; actor: string; detail?: string }[] }>(t, all, 'audit --json').entries;
  t.deepEqual(entries.map((entry) => entry.type).sort(), ['disabled', 'enrolled', 'enrolled']);
  t.like(entries.find((entry) => entry.type === 'disabled'), { deviceId: first.id, actor: 'operator:operator', detail: 'stolen car' });
  t.deepEqual(jsonOf<{ entries: { type: string }[] }>(t, one, 'audit --device').entries.map((entry) => entry.type), ['disabled', 'enrolled'], 'newest first');
  t.regex(table.stdout, /^SEQ\s+TIME\s+EVENT\s+DEVICE\s+ACTOR\s+DETAIL$/m);
  t.regex(table.stdout, new RegExp(`^3\\s+\\S+ \\S+\\s+disabled\\s+${first.id}\\s+operator:operator\\s+stolen car; serial (?:[0-9A-F]{2})+$`, 'm'));
  t.regex(table.stdout, /^3 entries$/m);
  t.is(jsonOf<{ entries: unknown[] }>(t, recent, 'audit --since 1h').entries.length, 3);
  t.is(future.stdout, 'no audit entries\n');
  refused(t, badSince, 'audit --since yesterday', 2, 'CLI_USAGE', /--since takes an ISO 8601 time/);
  t.is(verified.code, 0, verified.stderr);
  t.regex(verified.stdout, /^audit log intact: 3 entries, head [0-9a-f]{64}$/m);

  // Alter entry 2 on disk while the server is stopped, then ask the restarted server.
  await fleet.server.close();
  const db = new Level<string, string>(fleet.layout.registry, { valueEncoding: 'utf8' });
  const key = 'a!000000000002';
  const entry = JSON.parse((await db.get(key)) ?? '{}') as Record<string, unknown>;
  await db.put(key, JSON.stringify({ ...entry, actor: 'operator:mallory' }));
  await db.close();
  const restarted = await startFleet(t, { dataDir: fleet });
  const [broken, brokenJson] = await Promise.all([cli(restarted, ['audit', 'verify']), cli(restarted, ['audit', 'verify', '--json'])]);
  t.is(broken.code, 1, broken.stderr);
  t.regex(broken.stdout, /^audit log BROKEN at entry 2: entry 2 was altered \(1 entry before it verified\)$/m);
  t.regex(broken.stderr, /^fleetgate: CLI_AUDIT_BROKEN: the audit log's hash chain is broken at entry 2: entry 2 was altered\n$/);
  t.is(brokenJson.code, 1);
  t.like(JSON.parse(brokenJson.stdout), { ok: false, brokenAt: 2 });
});

// ---------------------------------------------------------------------------------------------

test('operator issue makes a second operator credential; admin commands use it with --cert/--key and the audit names it', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const dir = await tempDir(t, 'fleetgate-operator-');
  const out = join(dir, 'alice');
  const issued = await fleetgate(['operator', 'issue', 'alice', '--out', out, '--data', fleet.dir, '--valid-days', '30', '--json']);
  const credential = jsonOf<{ name: string; cert: string; key: string; root: string; expiry: string }>(t, issued, 'operator issue');
  t.deepEqual(await listFiles(out), ['alice.crt', 'alice.key', 'root.crt']);
  t.is(((await stat(credential.key)).mode & 0o777).toString(8), '600', 'the key is mode 0600');
  t.true((await readFile(credential.root)).equals(await readFile(fleet.layout.rootCert)));
  const certificate = new X509Certificate(await readFile(credential.cert));
  t.is(certificate.subjectAltName, 'URI:urn:fleetgate:operator:alice');
  const days = (Date.parse(certificate.validTo) - Date.now()) / 86_400_000;
  t.true(days > 29.9 && days < 30.1, `valid for 30 days (${days})`);
  const chain = await run('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', fleet.layout.rootCert, '-untrusted', fleet.layout.authorityCert('issuing'), credential.cert]);
  t.is(chain.code, 0, chain.stdout + chain.stderr);

  // No --data: the root comes from root.crt next to --cert.
  const asAlice = (args: readonly string[]): Promise<RunResult> => fleetgate([...args, '--server', fleet.server.adminUrl, '--cert', credential.cert, '--key', credential.key], { cwd: dir });
  const disabled = await asAlice(['device', 'disable', device.id]);
  t.is(disabled.code, 0, disabled.stderr);
  const audit = jsonOf<{ entries: { type: string; actor: string }[] }>(t, await asAlice(['audit', '--device', device.id, '--json']), 'audit as alice');
  t.like(audit.entries[0], { type: 'disabled', actor: 'operator:alice' }, 'the newest entry first');

  // Refusals: the same name again (the key is never overwritten), bad names, a device
  // certificate as operator, half a credential, a key of another certificate.
  const before = await snapshotFiles(out);
  await writeFile(join(dir, 'device.crt'), device.operational.certPem);
  await writeFile(join(dir, 'device.key'), device.operational.keyPem);
  const [twice, badName, noOut, asDevice, halfCredential, wrongKey] = await Promise.all([
    fleetgate(['operator', 'issue', 'alice', '--out', out, '--data', fleet.dir]),
    fleetgate(['operator', 'issue', 'Alice!', '--out', join(dir, 'bad'), '--data', fleet.dir]),
    fleetgate(['operator', 'issue', 'bob', '--data', fleet.dir]),
    fleetgate(['device', 'list', '--server', fleet.server.adminUrl, '--data', fleet.dir, '--cert', join(dir, 'device.crt'), '--key', join(dir, 'device.key')]),
    fleetgate(['device', 'list', '--server', fleet.server.adminUrl, '--data', fleet.dir, '--cert', credential.cert]),
    fleetgate(['device', 'list', '--server', fleet.server.adminUrl, '--data', fleet.dir, '--cert', credential.cert, '--key', join(dir, 'device.key')]),
  ]);
  refused(t, twice, 'operator issue over an existing key', 1, 'PKI_KEY_EXISTS', /alice\.key already exists/);
  t.deepEqual(changedFiles(before, await snapshotFiles(out)), [], 'nothing overwritten');
  refused(t, badName, 'operator issue Alice!', 2, 'CLI_USAGE', /invalid operator name "Alice!"/);
  refused(t, noOut, 'operator issue without --out', 2, 'CLI_USAGE', /--out is required/);
  t.deepEqual(await listFiles(join(dir, 'bad')), []);
  refused(t, asDevice, 'a device certificate as --cert', 1, 'ADMIN_NOT_OPERATOR', /this certificate is not an operator certificate\nhint: /);
  refused(t, halfCredential, '--cert without --key', 2, 'CLI_USAGE', /--cert and --key go together/);
  refused(t, wrongKey, '--key of another certificate', 1, 'CLI_INPUT_INVALID', /device\.key is not the key of .*alice\.crt/);
});

test('an unreachable or wrong server, and a data directory without an operator credential, are clear errors', async (t) => {
  const fleet = await startFleet(t);
  const other = await makeDataDir(t);
  const empty = await tempDir(t, 'fleetgate-empty-');
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const metricsPort = new URL(fleet.server.metricsUrl).port;
  const [unreachable, plainHttp, metrics, est, otherFleet, uninitialised] = await Promise.all([
    fleetgate(['device', 'list', '--data', fleet.dir, '--server', url]),
    fleetgate(['device', 'list', '--data', fleet.dir, '--server', `http://127.0.0.1:${port}`]),
    fleetgate(['audit', '--data', fleet.dir, '--server', `https://127.0.0.1:${metricsPort}`]),
    fleetgate(['device', 'list', '--data', fleet.dir, '--server', fleet.estUrl]),
    fleetgate(['device', 'list', '--data', other.dir, '--server', fleet.server.adminUrl]),
    fleetgate(['device', 'list', '--data', empty, '--server', fleet.server.adminUrl]),
  ]);
  refused(t, unreachable, 'nothing listens', 1, 'CLI_SERVER_UNREACHABLE', new RegExp(`${url.replace(/\./g, '\\.')} \\(connection refused\\).*fleetgate serve`));
  refused(t, plainHttp, 'an http:// URL', 2, 'CLI_USAGE', /--server must be an https:\/\/ URL/);
  refused(t, metrics, 'the metrics port (plain HTTP)', 1, 'CLI_TLS_FAILED', /is that the admin API's HTTPS port\?/);
  refused(t, est, 'the EST port', 1, 'CLI_BAD_RESPONSE', /HTTP 404 .*ENROLL_NOT_FOUND.*is --server the fleetgate admin API\?/);
  refused(t, otherFleet, 'another fleet\'s data directory', 1, 'CLI_TLS_FAILED', /is not trusted .*does not chain to .*ca\/root\.crt/);
  refused(t, uninitialised, 'a data directory without an operator credential', 1, 'DATA_NOT_INITIALIZED', /operator\/operator\.crt is missing or unreadable: run `fleetgate init/);
});

// ---------------------------------------------------------------------------------------------

const ADMIN_COMMANDS: readonly Command[] = [
  deviceListCommand,
  deviceShowCommand,
  deviceRevokeCommand,
  deviceDisableCommand,
  deviceEnableCommand,
  deviceResetCommand,
  bootstrapTrustCommand,
  bootstrapListCommand,
  bootstrapUntrustCommand,
  auditCommand,
  auditVerifyCommand,
  crlCommand,
  operatorIssueCommand,
];

test('--help on every operator command documents every flag it accepts; the executable prints it and lists the commands', async (t) => {
  // The texts in-process (a process per command would cost a second each) ...
  for (const command of ADMIN_COMMANDS) {
    const label = `fleetgate ${command.path.join(' ')} --help`;
    t.true(command.help.startsWith(`Usage: fleetgate ${command.path.join(' ')}`), `${label}:\n${command.help}`);
    for (const flag of [...Object.keys(command.options).map((name) => `--${name}`), '--help']) {
      t.true(new RegExp(`${flag}(?![\\w-])`).test(command.help), `${label} mentions ${flag}`);
    }
    if (command !== operatorIssueCommand) t.regex(command.help, /--server URL.*\n.*--data DIR/, `${label} documents the connection`);
  }
  // ... and through the real executable: a command's help, a group, the top level.
  const [show, group, top] = await Promise.all([fleetgate(['device', 'show', '--help']), fleetgate(['device', '--help']), fleetgate(['--help'])]);
  t.is(show.code, 0, show.stderr);
  t.is(show.stdout, `${deviceShowCommand.help}\n`);
  t.is(group.code, 0, group.stderr);
  for (const action of ['list', 'show', 'revoke', 'disable', 'enable', 'reset']) t.true(group.stdout.includes(`fleetgate device ${action} `), group.stdout);
  t.is(top.code, 0, top.stderr);
  for (const command of ADMIN_COMMANDS) t.true(top.stdout.includes(`  ${command.path.join(' ')} `), `top-level help lists ${command.path.join(' ')}`);
});

// ---------------------------------------------------------------------------------------------
// Pure parts, in-process

test('allow-lists are recognised by content: manifest.json, manifest.csv, a JSON list, one id per line', (t) => {
  const manifest = JSON.stringify({
    format: 'fleetgate-bootstrap-manifest/1',
    factoryCa: 'AA:BB',
    devices: [
      { id: 'atm-000000000001', model: 'atm', serial: '1', expiry: '2030-01-01T00:00:00.000Z' },
      { id: 'atm-000000000002', model: 'kiosk', serial: '2', expiry: '2030-01-01T00:00:00.000Z' },
    ],
  });
  t.deepEqual(parseAllowList(manifest, 'm'), { ids: ['atm-000000000001', 'atm-000000000002'], format: 'manifest.json', models: ['atm', 'kiosk'], factoryCa: 'AA:BB' });
  t.deepEqual(parseAllowList('\uFEFFid,model,serial,expiry\r\natm-1,atm,01,2030\r\n\r\natm-2,atm,02,2030\r\n', 'c'), { ids: ['atm-1', 'atm-2'], format: 'manifest.csv', models: ['atm'] });
  t.deepEqual(parseAllowList('["atm-1", "atm-2", "atm-1"]', 'j'), { ids: ['atm-1', 'atm-2'], format: 'json list', models: [] }, 'duplicates dropped');
  t.deepEqual(parseAllowList('# lot 7\n\n  atm-1  \natm-2\n', 't'), { ids: ['atm-1', 'atm-2'], format: 'text', models: [] });

  const refusal = (text: string): string => {
    const error = t.throws(() => parseAllowList(text, 'F'), { instanceOf: CliError });
    t.is(error?.code, 'CLI_INPUT_INVALID');
    return error?.message ?? '';
  };
  t.regex(refusal(''), /F is empty/);
  t.regex(refusal('# only a comment\n'), /F holds no device ids/);
  t.regex(refusal('atm-1\nATM 2\n'), /^F line 2: "ATM 2" is not a device id/);
  t.regex(refusal('id,model\natm-1,atm\n,atm\n'), /^F line 3: "" is not a device id/);
  t.regex(refusal('{"devices": [{"id": "atm-1"}]}'), /neither a bootstrap manifest/);
  t.regex(refusal('{"format": "fleetgate-bootstrap-manifest/1", "devices": [{"id": "atm-1"}, {"id": 7}]}'), /devices\[1\]\.id: 7 is not a device id/);
  t.regex(refusal('[1, 2'), /not valid JSON/);
});

test('--since takes ISO 8601 or a duration ago; revocation reasons are matched to RFC 5280 names', (t) => {
  const now = new Date('2026-11-23T12:00:00.000Z');
  t.is(parseSince('90s', now), '2026-11-23T11:58:30.000Z');
  t.is(parseSince('2h', now), '2026-11-23T10:00:00.000Z');
  t.is(parseSince('7d', now), '2026-11-16T12:00:00.000Z');
  t.is(parseSince('2026-11-23T10:00:00+01:00', now), '2026-11-23T09:00:00.000Z');
  for (const bad of ['yesterday', '5w', '-1h', '1700000000']) t.throws(() => parseSince(bad, now), { message: /--since takes/ }, bad);

  t.is(canonicalRevocationReason('keyCompromise'), 'keyCompromise');
  t.is(canonicalRevocationReason('key-compromise'), 'keyCompromise');
  t.is(canonicalRevocationReason('Cessation Of Operation'), 'cessationOfOperation');
  // Issue 13: a reason outside RFC 5280 (free text, a typo) is a usage error listing the names.
  for (const bad of ['stolen from the van', 'keyCompromize']) t.throws(() => canonicalRevocationReason(bad), { instanceOf: CliError, message: /not an RFC 5280 revocation reason; use one of unspecified, keyCompromise, / }, bad);
});
