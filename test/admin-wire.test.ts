/**
 * The admin API's wire types are its own (server/src/admin/wire.ts): a field added to a stored
 * record does not reach the API until a view names it, what a view leaves out (a certificate's
 * DER, a trust's allow-list) stays out, and an optional field the record lacks stays absent
 * from the JSON, never `null`.
 */
import test from 'ava';
import { auditEntryView, certificateView, credentialView, deviceEventView, deviceView, presenceView, trustView } from '../server/src/admin/wire.ts';
import type { AuditEntry, CredentialRecord, DeviceEventRecord, PresenceRecord, TrustRecord } from '../server/src/registry/types.ts';
import { RECORD_TIME, certificateRecord, deviceRecord } from './helpers/registry-records.ts';

/** A record as a newer storage engine might return it: one more field than the API knows. */
const withExtra = <T extends object>(record: T): T => ({ ...record, internalNote: 'kept by the registry only' });

const keys = (value: object): string[] => Object.keys(JSON.parse(JSON.stringify(value)) as object);

test('a field added to a stored record is not sent: every view is built field by field', (t) => {
  const trust: TrustRecord = { name: 'acme', model: 'atm', caPem: 'PEM', fingerprint: 'AB:CD', namespace: 'acme.', allowList: ['acme.1', 'acme.2'], createdAt: RECORD_TIME, actor: 'operator:alice' };
  const credential: CredentialRecord = { kind: 'operator', name: 'alice', serial: 'a1', issuedAt: RECORD_TIME, expiresAt: RECORD_TIME, state: 'valid', recordedVia: 'issue', recordedAt: RECORD_TIME };
  const presence: PresenceRecord = { deviceId: 'd-1', connected: true, lastSeen: RECORD_TIME, connectedAt: RECORD_TIME, peer: '127.0.0.1' };
  const event: DeviceEventRecord = { deviceId: 'd-1', kind: 'refused', code: 'BROKER_DEVICE_REVOKED', first: RECORD_TIME, last: RECORD_TIME, count: 3 };
  const entry: AuditEntry = { type: 'revoked', deviceId: 'd-1', actor: 'operator:alice', seq: 7, time: RECORD_TIME, prevHash: '0'.repeat(64), hash: '1'.repeat(64) };
  const views: [string, object][] = [
    ['device', deviceView(withExtra(deviceRecord('d-1', 'a1')))],
    ['certificate', certificateView(withExtra(certificateRecord('d-1', 'a1')))],
    ['trust', trustView(withExtra(trust))],
    ['credential', credentialView(withExtra(credential))],
    ['presence', presenceView(withExtra(presence))],
    ['broker event', deviceEventView(withExtra(event))],
    ['audit entry', auditEntryView(withExtra(entry))],
  ];
  for (const [name, view] of views) {
    t.false('internalNote' in view, `${name}: the new stored field is not in the view`);
    t.false(keys(view).includes('internalNote'), `${name}: nor in its JSON`);
  }
  // What a view leaves out on purpose.
  t.false('der' in certificateView(certificateRecord('d-1', 'a1')), 'no DER');
  t.deepEqual(keys(trustView(trust)), ['name', 'model', 'caPem', 'fingerprint', 'namespace', 'createdAt', 'actor', 'allowListSize'], 'the allow-list by its size');
  t.like(trustView(trust), { allowListSize: 2, namespace: 'acme.' });
  t.like(trustView({ ...trust, namespace: undefined, allowList: undefined }), { namespace: null, allowListSize: null }, 'no namespace, no allow-list: null');
});

test('an optional field the record lacks is absent from the JSON, not null; one it has is sent as stored', (t) => {
  const device = deviceRecord('d-1', 'a1');
  t.deepEqual(keys(deviceView(device)), ['id', 'model', 'state', 'certSerial', 'certNotAfter', 'bootstrap', 'enrollments', 'renewals', 'resetPending', 'createdAt', 'updatedAt']);
  const revoked = { ...device, state: 'revoked' as const, stateReason: 'keyCompromise', previousSerial: 'a0', enrolledAt: RECORD_TIME, batch: 'b-1', provisionedAt: RECORD_TIME };
  t.deepEqual(JSON.parse(JSON.stringify(deviceView(revoked))), JSON.parse(JSON.stringify(revoked)), 'every field of a device record is in the view, with its value');
  const certificate = { ...certificateRecord('d-1', 'a1'), status: 'revoked' as const, revokedAt: RECORD_TIME, revocationReason: 'keyCompromise' as const };
  const { der: _der, ...sent } = certificate;
  t.deepEqual(JSON.parse(JSON.stringify(certificateView(certificate))), sent);
  t.deepEqual(keys(presenceView({ deviceId: 'd-1', connected: false, lastSeen: RECORD_TIME })), ['deviceId', 'connected', 'lastSeen']);
});
