/**
 * The operator authority on its own, without HTTP, over each registry engine (LevelDB in a temp
 * dir, PostgreSQL on a throwaway server): the rules
 * of device actions (exact: no-ops change nothing; revocation is final but for a reset), bulk
 * actions all or nothing, trust registrations (one trust per CA, no overlapping namespaces,
 * replace only when asked), credential revocation; every refusal with its OPERATOR_* code and
 * nothing written or audited.
 */
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { OperatorAuthorityError, type OperatorAuthorityErrorCode } from '../server/src/authority/errors.ts';
import { OperatorAuthority, type OperatorStore } from '../server/src/authority/operator-authority.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { enrollmentCommit } from './helpers/registry-records.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { ENGINES, type RegistryEngine } from './helpers/registries.ts';

/** An authority over a fresh registry, counting the CRL waits and the trust writes it makes. */
async function setup(t: ExecutionContext, engine: RegistryEngine, devices: readonly string[] = []) {
  const { registry } = await engine.create(t);
  for (const [index, id] of devices.entries()) await registry.commitIssuance(enrollmentCommit(id, `a${index + 1}`));
  const counts = { crlWaits: 0, trustWrites: 0 };
  const store: OperatorStore = {
    applyDeviceActions: (actions, options) => registry.applyDeviceActions(actions, options),
    listTrusts: () => registry.listTrusts(),
    putTrust: (trust) => {
      counts.trustWrites++;
      return registry.putTrust(trust);
    },
    deleteTrust: (name, actor) => {
      counts.trustWrites++;
      return registry.deleteTrust(name, actor);
    },
    revokeCredentials: (revocation) => registry.revokeCredentials(revocation),
  };
  const authority = new OperatorAuthority({
    store,
    crl: {
      revocationsPublished: async () => {
        counts.crlWaits++;
      },
    },
    importBatches: async () => ({ batches: [], credentials: [], invalid: [] }),
    logger: pino({ level: 'silent' }),
  });
  /** Everything a refusal must leave alone: the devices and the audit log. */
  const snapshot = async () => ({ devices: await registry.listDevices(), audit: await registry.readAudit() });
  return { registry, authority, counts, snapshot };
}

/** Expects an OperatorAuthorityError with `code`. */
async function refused(t: ExecutionContext, promise: Promise<unknown>, code: OperatorAuthorityErrorCode): Promise<void> {
  const error = await t.throwsAsync(promise, { instanceOf: OperatorAuthorityError });
  t.is(error?.code, code);
}

test.after.always(stopSharedPostgres);

for (const engine of ENGINES) {
  test(`${engine.name}: revoke: the device and its certificates, audited once under the operator, the CRL waited for; again: a no-op that keeps the reason`, async (t) => {
    const { registry, authority, counts } = await setup(t, engine, ['thermostat-1']);
    const first = await authority.changeDevice('thermostat-1', { action: 'revoke', revocationReason: 'keyCompromise', note: 'stolen from the van' }, 'alice');
    t.true(first.changed);
    t.like(first.device, { state: 'revoked', stateReason: 'keyCompromise: stolen from the van' });
    t.like(await registry.getCertificate('a1'), { status: 'revoked', revocationReason: 'keyCompromise' });
    t.is(counts.crlWaits, 1, 'a revocation answers once the CRL lists it');
    const operatorEntries = async () => (await registry.readAudit({ deviceId: 'thermostat-1' })).filter((entry) => entry.actor === 'operator:alice').map((entry) => entry.type);
    t.deepEqual(await operatorEntries(), ['revoked']);

    const again = await authority.changeDevice('thermostat-1', { action: 'revoke', revocationReason: 'superseded' }, 'bob');
    t.false(again.changed);
    t.is(again.device.stateReason, 'keyCompromise: stolen from the van', 'the first reason is kept');
    t.is((await registry.getCertificate('a1'))?.revocationReason, 'keyCompromise');
    t.is(counts.crlWaits, 1, 'a no-op waits for no CRL');
    t.deepEqual((await registry.readAudit({ deviceId: 'thermostat-1' })).filter((entry) => entry.actor === 'operator:bob'), []);

    const plain = await setup(t, engine, ['thermostat-2']);
    const revoked = await plain.authority.changeDevice('thermostat-2', { action: 'revoke' }, 'alice');
    t.is(revoked.device.stateReason, 'revoked', 'no reason and no note: the registry says revoked');
    t.is((await plain.registry.getCertificate('a1'))?.revocationReason, 'unspecified');
  });

  test(`${engine.name}: disable, enable, reset: each change audited once, a repeated one changes nothing; a revoked device refuses disable and enable, a reset lifts it`, async (t) => {
    const { registry, authority, counts, snapshot } = await setup(t, engine, ['camera-1']);
    t.like(await authority.changeDevice('camera-1', { action: 'disable', reason: 'maintenance' }, 'alice'), { changed: true, device: { state: 'disabled', stateReason: 'maintenance' } });
    t.like(await authority.changeDevice('camera-1', { action: 'disable', reason: 'other' }, 'alice'), { changed: false, device: { stateReason: 'maintenance' } });
    t.like(await authority.changeDevice('camera-1', { action: 'enable' }, 'alice'), { changed: true, device: { state: 'enrolled' } });
    t.like(await authority.changeDevice('camera-1', { action: 'enable' }, 'alice'), { changed: false });
    t.like(await authority.changeDevice('camera-1', { action: 'reset' }, 'alice'), { changed: true, device: { resetPending: true } });
    t.like(await authority.changeDevice('camera-1', { action: 'reset' }, 'alice'), { changed: false }, 'a reset still pending');
    t.deepEqual(
      (await registry.readAudit({ deviceId: 'camera-1' })).filter((entry) => entry.actor === 'operator:alice').map((entry) => entry.type),
      ['disabled', 'enabled', 'reset'],
    );
    t.is(counts.crlWaits, 0, 'only revocations wait for the CRL');

    await authority.changeDevice('camera-1', { action: 'revoke' }, 'alice');
    const before = await snapshot();
    await refused(t, authority.changeDevice('camera-1', { action: 'disable' }, 'alice'), 'OPERATOR_INVALID_STATE');
    await refused(t, authority.changeDevice('camera-1', { action: 'enable' }, 'alice'), 'OPERATOR_INVALID_STATE');
    await refused(t, authority.changeDevice('camera-404', { action: 'revoke' }, 'alice'), 'OPERATOR_DEVICE_NOT_FOUND');
    t.deepEqual(await snapshot(), before, 'a refusal writes and audits nothing');

    t.like(await authority.changeDevice('camera-1', { action: 'reset' }, 'alice'), { changed: true, device: { state: 'enrolled', resetPending: true } }, 'a reset lifts a revocation');
  });

  test(`${engine.name}: bulk: one refused device and nothing changes (the others skipped); continueOnError changes what it can`, async (t) => {
    const { authority, counts, snapshot } = await setup(t, engine, ['car-1', 'car-2', 'car-3']);
    await authority.changeDevice('car-2', { action: 'revoke' }, 'alice');
    const before = await snapshot();
    const waitsBefore = counts.crlWaits;

    const all = await authority.changeDevices(['car-1', 'car-2', 'car-404', 'car-3'], { action: 'revoke', revocationReason: 'cessationOfOperation' }, { operator: 'alice', continueOnError: false });
    t.deepEqual(
      all.results.map((result) => [result.deviceId, result.status, result.status === 'refused' ? result.code : undefined]),
      [
        ['car-1', 'skipped', undefined],
        ['car-2', 'unchanged', undefined],
        ['car-404', 'refused', 'OPERATOR_DEVICE_NOT_FOUND'],
        ['car-3', 'skipped', undefined],
      ],
    );
    t.deepEqual(all.summary, { changed: 0, unchanged: 1, refused: 1, skipped: 2 });
    t.deepEqual(await snapshot(), before, 'all or nothing: nothing written, nothing audited');
    t.is(counts.crlWaits, waitsBefore, 'nothing revoked, no CRL to wait for');

    const disabled = await authority.changeDevices(['car-1', 'car-2', 'car-3'], { action: 'disable', reason: 'recall' }, { operator: 'alice', continueOnError: false });
    t.deepEqual(
      disabled.results.map((result) => [result.deviceId, result.status, result.status === 'refused' ? result.code : undefined]),
      [
        ['car-1', 'skipped', undefined],
        ['car-2', 'refused', 'OPERATOR_INVALID_STATE'],
        ['car-3', 'skipped', undefined],
      ],
    );
    t.deepEqual(await snapshot(), before);

    const some = await authority.changeDevices(['car-1', 'car-2', 'car-3'], { action: 'disable', reason: 'recall' }, { operator: 'alice', continueOnError: true });
    t.deepEqual(some.summary, { changed: 2, unchanged: 0, refused: 1, skipped: 0 });
    t.deepEqual(
      (await snapshot()).devices.map((device) => [device.id, device.state, device.stateReason]),
      [
        ['car-1', 'disabled', 'recall'],
        ['car-2', 'revoked', 'revoked'],
        ['car-3', 'disabled', 'recall'],
      ],
    );
  });

  test(`${engine.name}: trusts: a registration is exact; an overlapping namespace, a CA trusted twice, a taken name or no scope is refused and nothing is written`, async (t) => {
    const { registry, authority, counts, snapshot } = await setup(t, engine);
    const acme = await manufacturer('acme');
    const beta = await manufacturer('beta');
    const added = await authority.addTrust({ name: 'acme', model: 'atm', caPem: acme.pem, namespace: 'acme.' }, { operator: 'alice', replace: false });
    t.like(added, { changed: true, replaced: false, trust: { name: 'acme', namespace: 'acme.', actor: 'operator:alice' } });
    t.regex(added.trust.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const same = await authority.addTrust({ name: 'acme', model: 'atm', caPem: acme.pem, namespace: 'acme.' }, { operator: 'bob', replace: false });
    t.like(same, { changed: false, trust: { actor: 'operator:alice' } }, 'an identical registration is a no-op: the stored trust');
    t.is(counts.trustWrites, 1);

    const before = await snapshot();
    const trustsBefore = await registry.listTrusts();
    await refused(t, authority.addTrust({ name: 'beta', model: 'atm', caPem: beta.pem, namespace: 'acme.b.' }, { operator: 'alice', replace: false }), 'OPERATOR_TRUST_CONFLICT');
    await refused(t, authority.addTrust({ name: 'beta', model: 'atm', caPem: beta.pem, namespace: 'acme.' }, { operator: 'alice', replace: true }), 'OPERATOR_TRUST_CONFLICT');
    await refused(t, authority.addTrust({ name: 'acme2', model: 'atm', caPem: acme.pem, namespace: 'other.' }, { operator: 'alice', replace: true }), 'OPERATOR_TRUST_EXISTS');
    await refused(t, authority.addTrust({ name: 'acme', model: 'kiosk', caPem: acme.pem, namespace: 'acme.' }, { operator: 'alice', replace: false }), 'OPERATOR_TRUST_EXISTS');
    await refused(t, authority.addTrust({ name: 'beta', model: 'atm', caPem: beta.pem }, { operator: 'alice', replace: false }), 'OPERATOR_TRUST_SCOPE_REQUIRED');
    await refused(t, authority.addTrust({ name: 'beta', model: 'atm', caPem: beta.pem, allowList: ['thermostat-3f9a0c12b7e4'] }, { operator: 'alice', replace: false }), 'OPERATOR_TRUST_INVALID');
    await refused(t, authority.addTrust({ name: 'fleetgate-factory', model: 'atm', caPem: beta.pem, namespace: 'beta.' }, { operator: 'alice', replace: false }), 'OPERATOR_TRUST_INVALID');
    await refused(t, authority.removeTrust('nobody', 'alice'), 'OPERATOR_TRUST_NOT_FOUND');
    t.deepEqual(await registry.listTrusts(), trustsBefore);
    t.deepEqual(await snapshot(), before, 'no trust written, nothing audited');
    t.is(counts.trustWrites, 2, 'only the removal of a trust that does not exist reached the store');

    const replaced = await authority.addTrust({ name: 'acme', model: 'kiosk', caPem: acme.pem, namespace: 'acme.' }, { operator: 'alice', replace: true });
    t.like(replaced, { changed: true, replaced: true, trust: { model: 'kiosk' } });
    await authority.removeTrust('acme', 'alice');
    t.deepEqual(await registry.listTrusts(), []);
  });

  test(`${engine.name}: credentials: an unknown ref and the last operator certificate are refused with their codes, nothing revoked`, async (t) => {
    const { registry, authority } = await setup(t, engine);
    const time = new Date().toISOString();
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    await registry.recordCredential({ kind: 'operator', name: 'alice', serial: 'a11ce', issuedAt: time, expiresAt: expires, state: 'valid', recordedVia: 'issue', recordedAt: time }, 'system');
    await refused(t, authority.revokeCredentials('operator', 'nobody', { operator: 'alice', force: false }), 'OPERATOR_CREDENTIAL_NOT_FOUND');
    await refused(t, authority.revokeCredentials('operator', 'alice', { operator: 'alice', force: false }), 'OPERATOR_LAST_CREDENTIAL');
    t.is((await registry.getCredential('a11ce'))?.state, 'valid');
    const [revoked] = await authority.revokeCredentials('operator', 'alice', { operator: 'alice', force: true });
    t.like(revoked, { serial: 'a11ce', state: 'revoked', revokedBy: 'operator:alice' });
  });
}
