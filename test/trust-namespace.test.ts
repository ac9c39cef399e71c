import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FACTORY_DEVICE_ID_PATTERN, isFactoryDeviceId } from '../server/src/authority/identity.ts';
import { loadAuthorityFromDataDir } from '../server/src/datadir/authorities.ts';
import { BatchError, issueBootstrapBatch } from '../server/src/factory/bootstrap-batch.ts';
import { idPrefixProblem, newDeviceId } from '../server/src/factory/device-ids.ts';
import type { TrustRecord } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { enrollWithBootstrap } from './helpers/device.ts';
import { factoryCredentials, startFleet, type Fleet } from './helpers/fleet.ts';
import { manufacturer, tryEnroll } from './helpers/manufacturer.ts';
import type { RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * Issue #8: a manufacturer trust vouches only for the ids of its scope (an id namespace, an
 * allow-list or both), never for an id of the fleetgate factory form; a trust without a scope is
 * refused at registration, and one stored before scopes existed admits nobody.
 */

type ErrorBody = { error: { code: string; message: string } };
const errorCode = (body: { json<T>(): T }): string => body.json<ErrorBody>().error.code;

function cli(fleet: Fleet, args: readonly string[]): Promise<RunResult> {
  return fleetgate([...args, '--data', fleet.dir, '--server', fleet.server.adminUrl]);
}

/** The audit entries of one type. */
async function audited(fleet: Fleet, type: string) {
  return (await fleet.server.registry.readAudit({})).filter((entry) => entry.type === type);
}

test('fleetgate factory ids have the reserved form, and only they: the generator and the reservation agree', (t) => {
  for (const model of ['thermostat', 'car', 'a', 'acme-atm', 'x'.repeat(32)]) {
    for (let index = 0; index < 200; index++) t.true(isFactoryDeviceId(newDeviceId(model)), model);
  }
  for (const id of ['thermostat-0123456789ab', 'acme-atm-ffffffffffff']) t.true(isFactoryDeviceId(id), id);
  for (const id of ['acme.atm-0123456789ab', 'acme_0123456789ab', 'thermostat-0123456789a', 'thermostat-0123456789abc', 'thermostat-0123456789AB', 'bank-a', '1thermostat-0123456789ab', '-0123456789ab']) {
    t.false(isFactoryDeviceId(id), id);
  }
  t.is(FACTORY_DEVICE_ID_PATTERN.source, '^[a-z][a-z0-9-]{0,31}-[0-9a-f]{12}$');
  t.is(idPrefixProblem('acme.', 'atm'), undefined);
  t.regex(idPrefixProblem('acme-', 'atm') ?? '', /reserved/, 'acme-atm-<hex> is of the fleetgate form');
  t.regex(idPrefixProblem('acme', 'atm') ?? '', /ending with/);
  t.regex(idPrefixProblem(`${'a'.repeat(47)}.`, 'x'.repeat(20)) ?? '', /64 characters/);
});

test('bootstrap batches with an id prefix: ids <prefix><model>-<12 hex>, outside the reserved form; a prefix that would make reserved ids is refused before anything is written', async (t) => {
  const fleet = await startFleet(t);
  const factory = await loadAuthorityFromDataDir(fleet.dir, 'factory');
  const root = Buffer.from(fleet.rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const out = await tempDir(t, 'fleetgate-prefix-');
  const manifest = await issueBootstrapBatch({ factory, root, model: 'atm', count: 3, outDir: out, validDays: 30, idPrefix: 'acme.' });
  for (const { id } of manifest.devices) {
    t.regex(id, /^acme\.atm-[0-9a-f]{12}$/);
    t.false(isFactoryDeviceId(id));
  }
  const refusedOut = join(out, 'refused');
  const error = await t.throwsAsync(issueBootstrapBatch({ factory, root, model: 'atm', count: 1, outDir: refusedOut, validDays: 30, idPrefix: 'acme-' }), { instanceOf: BatchError });
  t.regex(error?.message ?? '', /reserved/);
  const cliRefused = await fleetgate(['bootstrap', 'issue', '--data', fleet.dir, '--model', 'atm', '--count', '1', '--out', refusedOut, '--id-prefix', 'Acme.']);
  t.is(cliRefused.code, 1, cliRefused.stderr);
  t.regex(cliRefused.stderr, /^fleetgate: BOOTSTRAP_INVALID: invalid --id-prefix "Acme\."/);
  await t.throwsAsync(import('node:fs/promises').then(({ access }) => access(refusedOut)), undefined, 'no folder written');
});

test('a manufacturer trust cannot claim the id of a fleetgate factory device: 403 ENROLL_ID_RESERVED, audited, nothing written; the real device then enrolls', async (t) => {
  const fleet = await startFleet(t);
  const [victim] = await factoryCredentials(t, fleet, 'thermostat', 1);
  if (!victim) throw new Error('no credential');
  const acme = await manufacturer('ACME');
  const put = await admin(fleet, 'PUT', '/v1/trusts/acme', { body: { model: 'atm', caPem: acme.pem, namespace: 'acme.' } });
  t.is(put.status, 200, put.body.toString());

  const squatter = await acme.device(victim.id);
  const refusal = await tryEnroll(fleet, squatter);
  t.is(refusal.status, 403, refusal.text);
  t.is(refusal.code, 'ENROLL_ID_RESERVED');
  t.regex(refusal.text, /fleetgate factory ids/);
  t.is(await fleet.server.registry.getDevice(victim.id), undefined, 'nothing written for the claimed id');
  const [entry] = await audited(fleet, 'refused');
  t.like(entry, { code: 'ENROLL_ID_RESERVED', deviceId: victim.id, actor: 'trust:acme' }, 'the trust is the actor: the victim did nothing');
  t.regex(entry?.detail ?? '', /^simpleenroll: .*trust acme/);

  // The same id through an allow-list is refused at registration, and would be at enrollment.
  const listed = await admin(fleet, 'PUT', '/v1/trusts/acme', { body: { model: 'atm', caPem: acme.pem, allowList: ['acme.atm-1', victim.id] } });
  t.is(listed.status, 400);
  t.is(errorCode(listed), 'ADMIN_TRUST_INVALID');
  t.regex(listed.body.toString(), /fleetgate factory ids/);

  const enrolled = await enrollWithBootstrap(fleet, victim);
  t.is(enrolled.id, victim.id);
  t.like(await fleet.server.registry.getDevice(victim.id), { model: 'thermostat', bootstrap: { trust: 'fleetgate-factory' } });
});

test('a namespace admits the ids that start with it and refuses the others (403 ENROLL_ID_OUTSIDE_TRUST); with an allow-list as well, an id must satisfy both', async (t) => {
  const fleet = await startFleet(t);
  const acme = await manufacturer('ACME');
  t.is((await admin(fleet, 'PUT', '/v1/trusts/acme', { body: { model: 'atm', caPem: acme.pem, namespace: 'acme.' } })).status, 200);
  const inside = await tryEnroll(fleet, await acme.device('acme.atm-0001'));
  t.is(inside.status, 200, inside.text);
  t.like(await fleet.server.registry.getDevice('acme.atm-0001'), { model: 'atm', bootstrap: { trust: 'acme' } });

  for (const id of ['bank-a', 'acmecorp.x', 'acme', 'xacme.atm-1']) {
    const outside = await tryEnroll(fleet, await acme.device(id));
    t.is(outside.status, 403, id);
    t.is(outside.code, 'ENROLL_ID_OUTSIDE_TRUST', id);
    t.regex(outside.text, new RegExp(`device id ${id.replace('.', '\\.')} is outside the namespace acme\\. of trust acme`));
    t.is(await fleet.server.registry.getDevice(id), undefined, `nothing written for ${id}`);
  }
  t.is((await audited(fleet, 'refused')).filter((entry) => entry.code === 'ENROLL_ID_OUTSIDE_TRUST').length, 4);

  const both = await admin(fleet, 'PUT', '/v1/trusts/acme?replace=true', { body: { model: 'atm', caPem: acme.pem, namespace: 'acme.', allowList: ['acme.atm-0002'] } });
  t.is(both.status, 200, both.body.toString());
  t.like(both.json<{ trust: Record<string, unknown> }>().trust, { namespace: 'acme.', allowListSize: 1 });
  t.is((await tryEnroll(fleet, await acme.device('acme.atm-0002'))).status, 200);
  const notListed = await tryEnroll(fleet, await acme.device('acme.atm-0003'));
  t.is(notListed.status, 403);
  t.is(notListed.code, 'ENROLL_ID_OUTSIDE_TRUST');
  t.regex(notListed.text, /not on the allow-list of acme/);
});

test('registration: no scope 400 ADMIN_TRUST_SCOPE_REQUIRED; a bad namespace or allow-list 400; an overlapping namespace 409 ADMIN_TRUST_CONFLICT; nothing written', async (t) => {
  const fleet = await startFleet(t);
  const acme = await manufacturer('ACME');
  const other = await manufacturer('Other');
  const put = (name: string, body: Record<string, unknown>) => admin(fleet, 'PUT', `/v1/trusts/${name}`, { body: { model: 'atm', caPem: acme.pem, ...body } });
  const noScope = await put('acme', {});
  t.is(noScope.status, 400);
  t.is(errorCode(noScope), 'ADMIN_TRUST_SCOPE_REQUIRED');
  const cases: ReadonlyArray<[string, Record<string, unknown>]> = [
    ['namespace without a trailing separator', { namespace: 'acme' }],
    ['upper-case namespace', { namespace: 'ACME.' }],
    ['one-character namespace', { namespace: '.' }],
    ['too long a namespace', { namespace: `${'a'.repeat(48)}.` }],
    ['namespace with a slash', { namespace: 'acme/' }],
    ['namespace of another type', { namespace: 7 }],
    ['null namespace', { namespace: null }],
    ['empty allow-list', { allowList: [] }],
    ['allow-list of another type', { allowList: 'acme.atm-1' }],
    ['allow-list with a bad id', { allowList: ['Not An Id'] }],
    ['allow-list with a reserved id', { allowList: ['acme.atm-1', 'camera-00112233aabb'] }],
    ['allow-list outside the namespace', { namespace: 'acme.', allowList: ['acme.atm-1', 'other.1'] }],
  ];
  for (const [label, body] of cases) {
    const answer = await put('acme', body);
    t.is(answer.status, 400, label);
    t.is(errorCode(answer), 'ADMIN_TRUST_INVALID', label);
  }
  t.deepEqual(await fleet.server.registry.listTrusts(), [], 'nothing registered');
  t.deepEqual(await audited(fleet, 'trust-added'), []);

  t.is((await put('acme', { namespace: 'acme.' })).status, 200);
  t.is((await put('acme', { namespace: 'acme.' })).status, 200, 'the same trust again is no conflict with itself');
  for (const namespace of ['acme.', 'acme.atm.', 'acm-']) {
    const overlap = await admin(fleet, 'PUT', '/v1/trusts/other', { body: { model: 'cam', caPem: other.pem, namespace } });
    if (namespace === 'acm-') {
      t.is(overlap.status, 200, 'acm- and acme. share no id');
      continue;
    }
    t.is(overlap.status, 409, namespace);
    t.is(errorCode(overlap), 'ADMIN_TRUST_CONFLICT', namespace);
  }
  t.deepEqual((await fleet.server.registry.listTrusts()).map((trust) => [trust.name, trust.namespace]), [['acme', 'acme.'], ['other', 'acm-']]);
});

test('a trust stored before scopes existed admits nobody (403 ENROLL_TRUST_UNSCOPED) until it is registered again; one with an allow-list keeps working; bootstrap list shows and warns', async (t) => {
  const fleet = await startFleet(t);
  const legacy = await manufacturer('Legacy');
  const listed = await manufacturer('Listed');
  // Records as the registry held them before issue #8: written straight to the registry.
  const old = (name: string, caPem: string, extra: Partial<TrustRecord> = {}): TrustRecord => ({
    name,
    model: 'atm',
    caPem,
    fingerprint: 'AA',
    createdAt: new Date().toISOString(),
    actor: 'operator:operator',
    ...extra,
  });
  await fleet.server.registry.putTrust(old('legacy', legacy.pem));
  await fleet.server.registry.putTrust(old('listed', listed.pem, { allowList: ['bank-1'] }));

  const refused = await tryEnroll(fleet, await legacy.device('legacy.1'));
  t.is(refused.status, 403, refused.text);
  t.is(refused.code, 'ENROLL_TRUST_UNSCOPED');
  t.regex(refused.text, /register it again/);
  t.is(await fleet.server.registry.getDevice('legacy.1'), undefined);
  t.is((await tryEnroll(fleet, await listed.device('bank-1'))).status, 200, 'a stored allow-list still admits its ids');
  t.is((await tryEnroll(fleet, await listed.device('bank-2'))).code, 'ENROLL_ID_OUTSIDE_TRUST');

  const trusts = (await admin(fleet, 'GET', '/v1/trusts')).json<{ trusts: { name: string; namespace: string | null; allowListSize: number | null }[] }>().trusts;
  t.deepEqual(trusts.map(({ name, namespace, allowListSize }) => ({ name, namespace, allowListSize })), [
    { name: 'legacy', namespace: null, allowListSize: null },
    { name: 'listed', namespace: null, allowListSize: 1 },
  ]);
  const list = await cli(fleet, ['bootstrap', 'list']);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^NAME\s+MODEL\s+NAMESPACE\s+CA\s+FINGERPRINT\s+ALLOW-LIST\s+ADDED\s+BY$/m);
  t.regex(list.stdout, /^legacy\s+atm\s+none\s+Legacy device CA\s+AA\s+none\s/m);
  t.regex(list.stdout, /^warning: trust legacy has neither a namespace nor an allow-list: its devices are refused \(ENROLL_TRUST_UNSCOPED\) until you register it again with --replace and --namespace or --allowlist$/m);
  t.notRegex(list.stdout, /warning: trust listed/);

  // The operator's fix: register it again with a namespace.
  const dir = await tempDir(t, 'fleetgate-legacy-');
  await writeFile(join(dir, 'legacy.pem'), legacy.pem);
  const fixed = await cli(fleet, ['bootstrap', 'trust', '--replace', '--name', 'legacy', '--ca', join(dir, 'legacy.pem'), '--model', 'atm', '--namespace', 'legacy.']);
  t.is(fixed.code, 0, fixed.stderr);
  t.regex(fixed.stdout, /^replaced bootstrap trust legacy: /m);
  t.regex(fixed.stdout, /^\s+namespace\s+legacy\.$/m);
  t.regex(fixed.stdout, /^\s+admits\s+ids starting with legacy\.$/m);
  t.is((await tryEnroll(fleet, await legacy.device('legacy.1'))).status, 200);
});

test('bootstrap trust: neither --namespace nor --allowlist, or a bad namespace, is a usage error; a reserved id in the allow-list is refused; nothing is registered', async (t) => {
  const fleet = await startFleet(t);
  const acme = await manufacturer('ACME');
  const dir = await tempDir(t, 'fleetgate-trust-cli-');
  const ca = join(dir, 'acme.pem');
  const reservedList = join(dir, 'reserved.txt');
  const outsideList = join(dir, 'outside.txt');
  await writeFile(ca, acme.pem);
  await writeFile(reservedList, 'acme.atm-1\natm-0123456789ab\n');
  await writeFile(outsideList, 'acme.atm-1\nother.atm-1\n');
  const trust = (extra: readonly string[]) => cli(fleet, ['bootstrap', 'trust', '--name', 'acme', '--ca', ca, '--model', 'atm', ...extra]);
  const [noScope, badNamespace, reserved, outside] = await Promise.all([
    trust([]),
    trust(['--namespace', 'acme']),
    trust(['--allowlist', reservedList]),
    trust(['--namespace', 'acme.', '--allowlist', outsideList]),
  ]);
  t.is(noScope.code, 2, noScope.stderr);
  t.regex(noScope.stderr, /^fleetgate: CLI_USAGE: --namespace PREFIX or --allowlist FILE is required/);
  t.is(badNamespace.code, 2, badNamespace.stderr);
  t.regex(badNamespace.stderr, /^fleetgate: CLI_USAGE: --namespace "acme": /);
  t.is(reserved.code, 1, reserved.stderr);
  t.regex(reserved.stderr, /^fleetgate: CLI_INPUT_INVALID: .*reserved\.txt holds 1 id in the form of fleetgate factory ids .*atm-0123456789ab/);
  t.is(outside.code, 1, outside.stderr);
  t.regex(outside.stderr, /^fleetgate: CLI_INPUT_INVALID: .*outside --namespace acme\. \(e\.g\. other\.atm-1\)/);
  t.deepEqual(await fleet.server.registry.listTrusts(), []);

  const added = await trust(['--namespace', 'acme.', '--json']);
  t.is(added.code, 0, added.stderr);
  t.like(JSON.parse(added.stdout), { trust: { name: 'acme', namespace: 'acme.', allowListSize: null } });
  const conflict = await cli(fleet, ['bootstrap', 'trust', '--name', 'acme2', '--ca', ca, '--model', 'atm', '--namespace', 'acme.atm.']);
  t.is(conflict.code, 1);
  // One trust per CA: the same CA under another name is refused, naming the trust it has
  // (overlapping namespaces of two different CAs are refused above, ADMIN_TRUST_CONFLICT).
  t.regex(conflict.stderr, /^fleetgate: ADMIN_TRUST_EXISTS: this CA \(.*\) is already trusted as acme \(model atm\)/);
  t.deepEqual((await fleet.server.registry.listTrusts()).map((record) => record.name), ['acme']);
});
