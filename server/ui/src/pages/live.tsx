/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import type { AuditEntryView } from '../../../src/admin/wire.ts';
import { deviceHref, shortTime } from '../format.ts';

/** An event of the dashboard's live stream (dashboard/live-feed.ts, FeedEvent). */
interface LiveItem {
  readonly type: 'connected' | 'disconnected' | 'refused' | 'audit';
  readonly deviceId?: string;
  readonly time: string;
  readonly peer?: string;
  readonly reason?: string;
  readonly code?: string;
  readonly entry?: AuditEntryView;
}

const KEEP = 300;

function describe(item: LiveItem): string {
  if (item.type === 'connected') return `connected${item.peer ? ` from ${item.peer}` : ''}`;
  if (item.type === 'disconnected') return `disconnected (${item.reason ?? 'unknown'})`;
  if (item.type === 'refused') return `refused at the broker: ${item.code ?? ''}`;
  const entry = item.entry;
  return entry ? `${entry.type}${entry.code ? `: ${entry.code}` : ''} by ${entry.actor}` : 'audit entry';
}

/** Connects, disconnects, refusals and audit entries as they happen (server-sent events from the dashboard). */
export function LivePage() {
  const [items, setItems] = useState<LiveItem[]>([]);
  const [status, setStatus] = useState('connecting…');
  useEffect(() => {
    const source = new EventSource('/api/live');
    const take = (event: MessageEvent<string>): void => {
      const item = JSON.parse(event.data) as LiveItem;
      // Newest first by the time it happened: audit entries arrive up to 2 s after the broker's events.
      setItems((current) => [item, ...current].sort((a, b) => b.time.localeCompare(a.time)).slice(0, KEEP));
    };
    for (const type of ['connected', 'disconnected', 'refused', 'audit']) source.addEventListener(type, take as EventListener);
    source.onopen = () => setStatus('live');
    source.onerror = () => setStatus('reconnecting…');
    return () => source.close();
  }, []);
  return (
    <section aria-labelledby="live-title">
      <h2 id="live-title">Live</h2>
      <p class="muted" role="status">Stream: <span data-testid="live-status">{status}</span></p>
      {items.length === 0 ? <p class="muted">Waiting for events…</p> : null}
      <ol class="events" aria-live="polite" data-testid="live-events">
        {items.map((item) => (
          <li data-type={item.type} data-device={item.deviceId}>
            <time dateTime={item.time}>{shortTime(item.time)}</time>
            <strong>{item.deviceId ? <a href={deviceHref(item.deviceId)}>{item.deviceId}</a> : 'fleet'}</strong>
            <span>{describe(item)}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
