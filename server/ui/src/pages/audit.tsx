/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import type { AuditPageView, AuditVerificationView } from '../../../src/admin/wire.ts';
import { api } from '../api.ts';
import { ErrorBox } from '../components/common.tsx';
import { deviceHref, shortTime } from '../format.ts';

const PAGE_SIZE = 100;
const TYPES = ['enrolled', 'renewed', 'resent', 'refused', 'revoked', 'disabled', 'enabled', 'reset', 'cert-revoked', 'trust-added', 'trust-removed', 'batch-imported', 'credential-recorded', 'credential-revoked'];

/** `2026-12-01T10:00` from a datetime-local input as ISO 8601 UTC (the input is in local time). */
const isoOf = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined);

/** The audit log, newest first, with filters, and the hash chain's verification. */
export function AuditPage() {
  const [inputs, setInputs] = useState({ device: '', type: '', actor: '', since: '', until: '' });
  const [filter, setFilter] = useState(inputs);
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const [page, setPage] = useState<AuditPageView>();
  const [verification, setVerification] = useState<AuditVerificationView>();
  const [error, setError] = useState<unknown>();
  const before = cursors.at(-1);

  useEffect(() => {
    api.verifyAudit().then(setVerification, setError);
  }, []);
  useEffect(() => {
    let stopped = false;
    setError(undefined);
    api
      .audit({ device: filter.device || undefined, type: filter.type || undefined, actor: filter.actor || undefined, since: isoOf(filter.since), until: isoOf(filter.until), order: 'newest', before, limit: PAGE_SIZE })
      .then((value) => { if (!stopped) setPage(value); }, (failure: unknown) => { if (!stopped) setError(failure); });
    return () => { stopped = true; };
  }, [filter, before]);

  const field = (name: keyof typeof inputs) => (event: { currentTarget: HTMLInputElement | HTMLSelectElement }) => setInputs({ ...inputs, [name]: event.currentTarget.value });
  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log</h2>
      <div class="card" data-testid="chain">
        <h3>Hash chain</h3>
        {verification === undefined ? <p>Verifying…</p> : verification.ok ? (
          <p class="online" role="status">Intact: {verification.entries} entries, head {verification.head.slice(0, 16)}…</p>
        ) : (
          <p class="error" role="alert">Broken at entry {verification.brokenAt} of {verification.entries}: {verification.reason}</p>
        )}
        <button type="button" onClick={() => { setVerification(undefined); api.verifyAudit().then(setVerification, setError); }}>Verify again</button>
      </div>
      <form class="filters" onSubmit={(event) => { event.preventDefault(); setFilter({ ...inputs, device: inputs.device.trim().toLowerCase(), actor: inputs.actor.trim() }); setCursors([undefined]); }}>
        <label>Device id<input name="device" value={inputs.device} onInput={field('device')} /></label>
        <label>
          Type
          <select name="type" value={inputs.type} onChange={field('type')}>
            <option value="">any</option>
            {TYPES.map((type) => <option value={type}>{type}</option>)}
          </select>
        </label>
        <label>Actor<input name="actor" placeholder="operator:" value={inputs.actor} onInput={field('actor')} /></label>
        <label>Since<input name="since" type="datetime-local" value={inputs.since} onInput={field('since')} /></label>
        <label>Until<input name="until" type="datetime-local" value={inputs.until} onInput={field('until')} /></label>
        <button type="submit" class="primary">Filter</button>
      </form>
      <ErrorBox error={error} />
      {page ? (
        <>
          <div class="table-wrap">
            <table data-testid="audit">
              <thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Device</th><th scope="col">Actor</th><th scope="col" class="hide-narrow">Detail</th></tr></thead>
              <tbody>
                {page.entries.map((entry) => (
                  <tr>
                    <td>{entry.seq}</td>
                    <td>{shortTime(entry.time)}</td>
                    <td>{entry.type}</td>
                    <td>{entry.deviceId ? <a href={deviceHref(entry.deviceId)}>{entry.deviceId}</a> : '-'}</td>
                    <td>{entry.actor}</td>
                    <td class="hide-narrow wrap">{[entry.code, entry.detail, entry.peer].filter(Boolean).join(' · ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {page.entries.length === 0 ? <p class="muted">No entry matches{page.more ? ' on this page; older entries may' : ''}.</p> : null}
          <nav class="pager" aria-label="Pages">
            <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
            <button type="button" disabled={!page.more} onClick={() => setCursors([...cursors, page.cursor])}>Older</button>
          </nav>
        </>
      ) : error ? null : <p>Loading…</p>}
    </section>
  );
}
