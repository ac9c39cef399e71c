/**
 * Issue 13, "operator actions are exact": a repeated action that changes nothing is a no-op that
 * says so (200 `changed: false`, exit 0 "already ...", nothing audited, the reason kept); revoke
 * on a revoked device like disable on a disabled one; revocation reasons are RFC 5280 names (a
 * typo is refused, never free text); a CA is trusted once, a trust changes only with replace;
 * bulk actions are all or nothing (one registry writer job) unless continueOnError; every change
 * is audited exactly once.
 */
import test, { type ExecutionContext } from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry, DeviceRecord } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { crlListsSerial } from './helpers/crl.ts';
import { enrolledDevices } from './helpers/device.ts';
import { startFleet, type Fleet } from './helpers/fleet.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { run, type RunResult } from './helpers/run.ts';
import { FLEETGATE_BIN } from './helpers/serve-process.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { tempDir } from './helpers/temp-dir.ts';

function cli(fleet: Fleet, args: readonly string[], options: { input?: string } = {}): Promise<RunResult> {
  const all = [...args, '--data', fleet.dir, '--server', fleet.server.adminUrl];
  // stdin given: the same child as the fleetgate() helper, with the input piped in.
  return options.input === undefined ? fleetgate(all) : run(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, ...all], { input: options.input });
}

/** Operator audit entries (not the enrollments) for a device. */
async function operatorAudit(fleet: Fleet, id: string): Promise<AuditEntry[]> {
  return (await fleet.server.registry.readAudit({ deviceId: id })).filter((entry) => entry.actor.startsWith('operator:'));
}

const errorCode = (body: { error?: { code?: string } }): string | undefined => body.error?.code;

test('repeating disable, enable, revoke or reset is a no-op that says so: 200 changed:false, nothing audited, the reason kept', async (t) => {
  const fleet = await startFleet(t);
  const [a, b] = await enrolledDevices(t, fleet, 'thermostat', 2);
  if (!a || !b) throw new Error('no devices');
  const post = (id: string, action: string, body?: unknown) => admin(fleet, 'POST', `/v1/devices/${id}/${action}`, body === undefined ? {} : { body });

  const first = await post(a.id, 'disable', { reason: 'maintenance' });
  t.is(first.status, 200);
  t.like(first.json<{ device: DeviceRecord; changed: boolean }>(), { changed: true, device: { state: 'disabled', stateReason: 'maintenance' } });
  const again = await post(a.id, 'disable', { reason: 'another reason' });
  t.is(again.status, 200);
  t.like(again.json<{ device: DeviceRecord; changed: boolean }>(), { changed: false, device: { state: 'disabled', stateReason: 'maintenance' } }, 'the reason is not silently changed');
  t.like(await fleet.server.registry.getDevice(a.id), { stateReason: 'maintenance' });

  const enabledB = await post(b.id, 'enable');
  t.like(enabledB.json<{ changed: boolean }>(), { changed: false }, 'enable on an enabled device');

  const revoked = await post(a.id, 'revoke', { reason: 'keyCompromise', note: 'stolen from the van' });
  t.like(revoked.json<{ device: DeviceRecord; changed: boolean }>(), { changed: true, device: { state: 'revoked', stateReason: 'keyCompromise: stolen from the van' } });
  const revokedAgain = await post(a.id, 'revoke', { reason: 'superseded' });
  t.is(revokedAgain.status, 200, 'revoke on a revoked device is a no-op like disable on a disabled one');
  t.like(revokedAgain.json<{ device: DeviceRecord; changed: boolean }>(), { changed: false, device: { stateReason: 'keyCompromise: stolen from the van' } });
  const [certificate] = await fleet.server.registry.listCertificates(a.id);
  t.is(certificate?.revocationReason, 'keyCompromise', 'the CRL reason is the first one');
  // Disabling or enabling a revoked device is still refused: it would be a different state.
  t.is(errorCode((await post(a.id, 'disable')).json()), 'ADMIN_INVALID_STATE');
  t.is(errorCode((await post(a.id, 'enable')).json()), 'ADMIN_INVALID_STATE');

  t.like((await post(b.id, 'reset')).json<{ changed: boolean }>(), { changed: true });
  t.like((await post(b.id, 'reset')).json<{ changed: boolean }>(), { changed: false }, 'a reset still pending');

  // Each change audited exactly once; the no-ops not at all.
  t.deepEqual((await operatorAudit(fleet, a.id)).map((entry) => entry.type), ['disabled', 'revoked']);
  t.deepEqual((await operatorAudit(fleet, b.id)).map((entry) => entry.type), ['reset']);

  // The CLI says so and exits 0.
  const [disableAgain, enableAgain, revokeAgain, resetAgain] = await Promise.all([
    cli(fleet, ['device', 'disable', a.id]),
    cli(fleet, ['device', 'enable', b.id]),
    cli(fleet, ['device', 'revoke', a.id, '--reason', 'superseded']),
    cli(fleet, ['device', 'reset', b.id]),
  ]);
  t.is(disableAgain.code, 1, 'disable of a revoked device is refused');
  t.regex(disableAgain.stderr, /^fleetgate: ADMIN_INVALID_STATE: /);
  t.is(enableAgain.code, 0, enableAgain.stderr);
  t.is(enableAgain.stdout, `device ${b.id} already enabled: nothing changed\n`);
  t.is(revokeAgain.code, 0, revokeAgain.stderr);
  t.is(revokeAgain.stdout, `device ${a.id} already revoked (keyCompromise: stolen from the van): nothing changed\n`);
  t.is(resetAgain.code, 0, resetAgain.stderr);
  t.regex(resetAgain.stdout, /already reset: .*nothing changed/);
  t.deepEqual((await operatorAudit(fleet, a.id)).length + (await operatorAudit(fleet, b.id)).length, 3, 'still three operator entries');
});

test('revocation reasons are RFC 5280 names: a typo is a usage error (CLI) or ADMIN_BAD_REQUEST (API), and nothing changes', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'camera', 1);
  if (!device) throw new Error('no device');
  const [typo, freeText, json] = await Promise.all([
    cli(fleet, ['device', 'revoke', device.id, '--reason', 'keyCompromize', '--yes']),
    cli(fleet, ['device', 'revoke', device.id, '--reason', 'stolen']),
    cli(fleet, ['device', 'revoke', device.id, '--reason', 'keyCompromize', '--json']),
  ]);
  t.is(typo.code, 2);
  t.regex(typo.stderr, /^fleetgate: CLI_USAGE: --reason "keyCompromize" is not an RFC 5280 revocation reason; use one of unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation/);
  t.is(freeText.code, 2);
  t.is(json.code, 2);
  t.like(JSON.parse(json.stderr), { error: { code: 'CLI_USAGE' } }, 'under --json the error is JSON on stderr');
  const api = await admin(fleet, 'POST', `/v1/devices/${device.id}/revoke`, { body: { reason: 'keyCompromize' } });
  t.is(api.status, 400);
  t.is(errorCode(api.json()), 'ADMIN_BAD_REQUEST');
  t.regex(api.json<{ error: { message: string } }>().error.message, /RFC 5280 reason: unspecified, keyCompromise/);
  t.like(await fleet.server.registry.getDevice(device.id), { state: 'enrolled' }, 'nothing changed');
  t.deepEqual(await operatorAudit(fleet, device.id), []);
});

test('bulk: all or nothing (an unknown id changes nothing), --continue-on-error, ids from a manifest file and from stdin, summary and --json', async (t) => {
  const fleet = await startFleet(t);
  const devices = await enrolledDevices(t, fleet, 'car', 4);
  const ids = devices.map((device) => device.id).sort();
  const [d0 = '', d1 = '', d2 = '', d3 = ''] = ids;
  const unknown = 'car-000000000000';

  // API: one unknown id refuses the whole call; nothing is written or audited.
  const refused = await admin(fleet, 'POST', '/v1/devices/disable', { body: { ids: [d0, unknown, d1], reason: 'recall' } });
  t.is(refused.status, 409);
  const error = refused.json<{ error: { code: string; results: { id: string; status: string; code?: string }[]; summary: Record<string, number> } }>().error;
  t.is(error.code, 'ADMIN_BULK_REFUSED');
  t.deepEqual(error.results.map((result) => [result.id, result.status, result.code]), [[d0, 'skipped', undefined], [unknown, 'refused', 'ADMIN_DEVICE_NOT_FOUND'], [d1, 'skipped', undefined]]);
  for (const id of [d0, d1]) t.like(await fleet.server.registry.getDevice(id), { state: 'enrolled' });
  t.deepEqual(await operatorAudit(fleet, d0), []);
  for (const body of [{ ids: [] }, { ids: [d0, d0] }, { ids: ['Not An Id'] }, { ids: [d0], continueOnError: 'yes' }, { ids: [d0], reason: 'keyCompromize' }]) {
    const bad = await admin(fleet, 'POST', '/v1/devices/revoke', { body });
    t.is(bad.status, 400, JSON.stringify(body));
    t.is(errorCode(bad.json()), 'ADMIN_BAD_REQUEST');
  }

  // CLI, all or nothing: exit 1, the refused id named, nothing changed.
  const cliRefused = await cli(fleet, ['device', 'disable', d0, unknown, d1]);
  t.is(cliRefused.code, 1);
  t.regex(cliRefused.stderr, new RegExp(`^fleetgate: ADMIN_BULK_REFUSED: 1 of 3 devices refused, nothing changed: ${unknown} \\(ADMIN_DEVICE_NOT_FOUND\\)\\n  device ${unknown} refused: ADMIN_DEVICE_NOT_FOUND: no device ${unknown}\\n$`));
  t.is(cliRefused.stdout, '');
  const cliRefusedJson = await cli(fleet, ['device', 'disable', d0, unknown, '--json']);
  t.is(cliRefusedJson.code, 1);
  t.like(JSON.parse(cliRefusedJson.stderr), { error: { code: 'ADMIN_BULK_REFUSED', summary: { refused: 1, skipped: 1 } } });
  for (const id of [d0, d1]) t.like(await fleet.server.registry.getDevice(id), { state: 'enrolled' }, 'nothing changed');

  // --continue-on-error: the others change, the refusal is reported, exit 1 (CLI_PARTIAL).
  const partial = await cli(fleet, ['device', 'disable', d0, unknown, '--reason', 'recall', '--continue-on-error']);
  t.is(partial.code, 1);
  t.regex(partial.stdout, new RegExp(`^device ${d0} disabled \\(recall\\): `, 'm'));
  t.regex(partial.stdout, new RegExp(`^device ${unknown} refused: ADMIN_DEVICE_NOT_FOUND: `, 'm'));
  t.regex(partial.stdout, /^2 devices: 1 disabled, 1 refused$/m);
  t.regex(partial.stderr, /^fleetgate: CLI_PARTIAL: 1 device of 2 refused/);

  // Ids from a manifest (what `fleetgate bootstrap issue` writes), and from stdin.
  const dir = await tempDir(t, 'fleetgate-bulk-');
  const manifest = join(dir, 'manifest.csv');
  await writeFile(manifest, `id,model,serial,expiry\n${d0}\ncar-000000000000\n`.replace('car-000000000000', d1));
  const fromFile = await cli(fleet, ['device', 'disable', '--from', manifest, '--reason', 'recall', '--json']);
  t.is(fromFile.code, 0, fromFile.stderr);
  t.like(JSON.parse(fromFile.stdout), { summary: { changed: 1, unchanged: 1, refused: 0 } }, `${d0} was already disabled`);
  t.deepEqual((await operatorAudit(fleet, d0)).map((entry) => entry.type), ['disabled'], 'audited once, not again by the repeat');

  const fromStdin = await cli(fleet, ['device', 'revoke', d2, '--from', '-', '--reason', 'cessation-of-operation'], { input: `# end of life\n${d3}\n${d2}\n` });
  t.is(fromStdin.code, 0, fromStdin.stderr);
  t.regex(fromStdin.stdout, /^2 devices: 2 revoked$/m);
  for (const id of [d2, d3]) {
    const record = await fleet.server.registry.getDevice(id);
    t.is(record?.state, 'revoked');
    t.true(crlListsSerial(await fleet.server.crl.crl(), record?.certSerial ?? ''), 'the bulk revocation is on the CRL when the command returns');
  }
  const usage = await cli(fleet, ['device', 'enable']);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /^fleetgate: CLI_USAGE: device enable needs ID\.\.\. or --from FILE\|-/);
  const badFile = await cli(fleet, ['device', 'enable', '--from', join(dir, 'missing.txt')]);
  t.is(badFile.code, 1);
  t.regex(badFile.stderr, /^fleetgate: CLI_INPUT_INVALID: cannot read --from .*missing\.txt: no such file/);
});

test('a CA is trusted once: the same CA under another name is refused with the existing name; a change takes --replace; the same registration is a no-op', async (t) => {
  const fleet = await startFleet(t);
  const acme = await manufacturer('acme');
  const dir = await tempDir(t, 'fleetgate-trust-once-');
  const ca = join(dir, 'acme.pem');
  await writeFile(ca, acme.pem);
  const trust = (name: string, extra: readonly string[] = []): Promise<RunResult> => cli(fleet, ['bootstrap', 'trust', '--name', name, '--ca', ca, '--model', 'atm', '--namespace', 'acme.', ...extra]);

  const added = await trust('acme');
  t.is(added.code, 0, added.stderr);
  t.regex(added.stdout, /^added bootstrap trust acme: /);
  const [second, same, changed] = await Promise.all([trust('acme-2'), trust('acme'), cli(fleet, ['bootstrap', 'trust', '--name', 'acme', '--ca', ca, '--model', 'kiosk', '--namespace', 'acme.'])]);
  t.is(second.code, 1);
  t.regex(second.stderr, /^fleetgate: ADMIN_TRUST_EXISTS: this CA \(.*\) is already trusted as acme \(model atm\)/);
  t.is(same.code, 0, same.stderr);
  t.regex(same.stdout, /^unchanged: bootstrap trust acme: .*nothing changed\)$/m);
  t.is(changed.code, 1);
  t.regex(changed.stderr, /^fleetgate: ADMIN_TRUST_EXISTS: trust acme exists \(model atm, .*replace it explicitly/);
  t.deepEqual((await fleet.server.registry.listTrusts()).map((entry) => [entry.name, entry.model]), [['acme', 'atm']], 'nothing written by the refusals');

  const replaced = await cli(fleet, ['bootstrap', 'trust', '--name', 'acme', '--ca', ca, '--model', 'kiosk', '--namespace', 'acme.', '--replace']);
  t.is(replaced.code, 0, replaced.stderr);
  t.regex(replaced.stdout, /^replaced bootstrap trust acme: .* enroll as model kiosk$/m);
  const replaceOther = await trust('acme-2', ['--replace']);
  t.is(replaceOther.code, 1, '--replace does not move a CA to another name');
  t.regex(replaceOther.stderr, /already trusted as acme/);
  const api = await admin(fleet, 'PUT', '/v1/trusts/acme?replace=maybe', { body: { model: 'atm', caPem: acme.pem, namespace: 'acme.' } });
  t.is(errorCode(api.json()), 'ADMIN_BAD_REQUEST');
  const audit = (await fleet.server.registry.readAudit()).filter((entry) => entry.type === 'trust-added');
  t.is(audit.length, 2, 'added and replaced: audited once each, the no-op not at all');
});
