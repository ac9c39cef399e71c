/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import type { DeviceDetail } from '../../../src/admin/wire.ts';
import { api } from '../api.ts';
import { ConfirmDialog, ErrorBox, StateBadge } from '../components/common.tsx';
import { shortTime } from '../format.ts';

type Action = 'revoke' | 'disable' | 'enable' | 'reset';

/** RFC 5280 §5.3.1 reason names the admin API takes for a revocation. */
const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'];

const ACTION_TEXT: Record<Action, { label: string; title: (id: string) => string; explain: string; danger: boolean }> = {
  revoke: { label: 'Revoke', title: (id) => `Revoke device ${id}?`, explain: 'Every certificate of the device is revoked and its MQTT session closed. Revocation is final; only a reset lets it enroll again.', danger: true },
  disable: { label: 'Disable', title: (id) => `Disable device ${id}?`, explain: 'The device is refused at the broker and at renewal until it is enabled again; its session is closed now.', danger: true },
  enable: { label: 'Enable', title: (id) => `Enable device ${id}?`, explain: 'The device may connect and renew again.', danger: false },
  reset: { label: 'Reset', title: (id) => `Reset device ${id}?`, explain: 'Allows one more bootstrap enrollment (also after a revocation).', danger: false },
};

/** One device: state, certificates, presence, audit entries and broker events, and the operator's actions. */
export function DevicePage({ id }: { id: string }) {
  const [detail, setDetail] = useState<DeviceDetail>();
  const [error, setError] = useState<unknown>();
  const [confirming, setConfirming] = useState<Action>();
  const [reason, setReason] = useState('unspecified');
  const [note, setNote] = useState('');
  const [notice, setNotice] = useState<string>();
  const [busy, setBusy] = useState(false);

  const load = (): void => {
    api.device(id).then(setDetail, setError);
  };
  useEffect(load, [id]);

  const act = async (action: Action): Promise<void> => {
    setConfirming(undefined);
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, string> = action === 'revoke' ? { reason, ...(note ? { note } : {}) } : action === 'disable' && note ? { reason: note } : {};
      const answer = await api.deviceAction(id, action, body);
      setNotice(answer.changed === false ? `Nothing to do: ${id} is already ${answer.device.state}.` : `${ACTION_TEXT[action].label}: ${id} is now ${answer.device.state}.`);
      setNote('');
      load();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  if (!detail) return <section><h2>Device {id}</h2><ErrorBox error={error} />{error ? null : <p>Loading…</p>}</section>;
  const { device, presence, certificates, history } = detail;
  const brokerEvents = detail.brokerEvents ?? [];
  return (
    <section aria-labelledby="device-title">
      <p><a href="#/devices">← Devices</a></p>
      <h2 id="device-title">Device {device.id}</h2>
      {notice ? <p class="notice" role="status">{notice}</p> : null}
      <ErrorBox error={error} />
      <div class="grid">
        <div class="card">
          <h3>State</h3>
          <dl class="facts">
            <dt>State</dt><dd data-testid="device-state"><StateBadge state={device.state} /></dd>
            <dt>Model</dt><dd>{device.model}</dd>
            <dt>Certificate</dt><dd>{device.certSerial || '-'}</dd>
            <dt>Expires</dt><dd>{shortTime(device.certNotAfter)}</dd>
            <dt>Enrolled</dt><dd>{shortTime(device.enrolledAt)}</dd>
            <dt>Renewals</dt><dd>{device.renewals}</dd>
            {device.resetPending ? <><dt>Reset</dt><dd>pending</dd></> : null}
          </dl>
        </div>
        <div class="card">
          <h3>Presence</h3>
          <dl class="facts">
            <dt>Online</dt><dd data-testid="device-online">{detail.connected ? <span class="online">online</span> : 'offline'}</dd>
            <dt>Since</dt><dd>{shortTime(detail.connected ? presence?.connectedAt : presence?.disconnectedAt)}</dd>
            <dt>From</dt><dd>{presence?.peer ?? '-'}</dd>
            <dt>Last seen</dt><dd>{shortTime(presence?.lastSeen)}</dd>
            {presence?.node ? <><dt>Node</dt><dd>{presence.node}</dd></> : null}
          </dl>
        </div>
      </div>
      <div class="actions" role="group" aria-label="Actions">
        {(['revoke', 'disable', 'enable', 'reset'] as const).map((action) => (
          <button type="button" class={ACTION_TEXT[action].danger ? 'danger' : ''} disabled={busy} onClick={() => setConfirming(action)}>{ACTION_TEXT[action].label}…</button>
        ))}
      </div>
      {confirming ? (
        <ConfirmDialog title={ACTION_TEXT[confirming].title(device.id)} confirmLabel={`${ACTION_TEXT[confirming].label} ${device.id}`} danger={ACTION_TEXT[confirming].danger} onConfirm={() => void act(confirming)} onCancel={() => setConfirming(undefined)}>
          <p>{ACTION_TEXT[confirming].explain}</p>
          {confirming === 'revoke' ? (
            <>
              <label>
                Reason (RFC 5280)
                <select name="reason" value={reason} onChange={(event) => setReason(event.currentTarget.value)}>
                  {REVOCATION_REASONS.map((name) => <option value={name}>{name}</option>)}
                </select>
              </label>
              <label>
                Note (optional, in the audit log)
                <input name="note" value={note} maxLength={1024} onInput={(event) => setNote(event.currentTarget.value)} />
              </label>
            </>
          ) : confirming === 'disable' ? (
            <label>
              Reason (optional, in the audit log)
              <input name="note" value={note} maxLength={1024} onInput={(event) => setNote(event.currentTarget.value)} />
            </label>
          ) : null}
        </ConfirmDialog>
      ) : null}
      <h3>Certificates</h3>
      <div class="table-wrap">
        <table data-testid="certificates">
          <thead><tr><th scope="col">Serial</th><th scope="col">Valid from</th><th scope="col">Valid until</th><th scope="col">Status</th></tr></thead>
          <tbody>
            {certificates.map((certificate) => (
              <tr>
                <td>{certificate.serial}</td>
                <td>{shortTime(certificate.notBefore)}</td>
                <td>{shortTime(certificate.notAfter)}</td>
                <td>{certificate.status}{certificate.revocationReason ? ` (${certificate.revocationReason}, ${shortTime(certificate.revokedAt)})` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Audit entries</h3>
      <div class="table-wrap">
        <table>
          <thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Actor</th><th scope="col">Detail</th></tr></thead>
          <tbody>
            {history.map((entry) => (
              <tr><td>{entry.seq}</td><td>{shortTime(entry.time)}</td><td>{entry.type}</td><td>{entry.actor}</td><td class="wrap">{[entry.code, entry.detail].filter(Boolean).join(': ')}</td></tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Broker events</h3>
      {brokerEvents.length === 0 ? <p class="muted">None.</p> : (
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Kind</th><th scope="col">Code</th><th scope="col">Count</th><th scope="col">Last</th><th scope="col">From</th></tr></thead>
            <tbody>
              {brokerEvents.map((event) => (
                <tr><td>{event.kind}</td><td>{event.code}</td><td>{event.count}</td><td>{shortTime(event.last)}</td><td>{event.peer ?? '-'}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
