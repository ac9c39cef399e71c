import type { Logger } from 'pino';
import type { AuditEntryView, AuditPageView } from '../admin/wire.ts';
import type { AdminClient } from '../cli/admin-client.ts';
import { isAuditPage } from '../cli/api-types.ts';
import type { LiveEvent } from '../live-events.ts';
import { AdminEventStream } from './admin-events.ts';
import { MinuteCounts, type RateSeries } from './minute-counts.ts';

/** How often new audit entries are asked for. */
const AUDIT_POLL_MS = 2_000;
/** Entries per audit request. */
const AUDIT_PAGE = 5_000;
/** The window of the per-minute charts. */
const WINDOW_MINUTES = 60;
/** Events kept for a page that opens the live view (the newest). */
const RECENT_EVENTS = 200;

/** One event as the page's live view receives it: the broker's, or a new audit entry. */
export type FeedEvent = LiveEvent | { readonly type: 'audit'; readonly deviceId?: string; readonly time: string; readonly entry: AuditEntryView };

/**
 * The dashboard's live view of the fleet, fed by the admin API: the broker's event stream
 * (connects, disconnects, refusals) and the audit log, read forward from a cursor every two
 * seconds (enrollments, renewals, EST refusals, operator actions). Counts per minute for the
 * overview charts are kept here from the same events (minute-counts.ts); at start the last hour
 * of the audit log is read to fill them.
 */
export class LiveFeed {
  private readonly counts: MinuteCounts;
  private readonly listeners = new Set<(event: FeedEvent) => void>();
  private readonly recent: FeedEvent[] = [];
  private readonly stream: AdminEventStream;
  private cursor: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly client: AdminClient,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.counts = new MinuteCounts(WINDOW_MINUTES, now);
    this.stream = new AdminEventStream(client.connection, (event) => this.publish(event), logger);
  }

  /** Reads the last hour of the audit log, then follows it and the event stream. */
  async start(): Promise<void> {
    this.stream.start();
    await this.readWindow(new Date(this.now() - WINDOW_MINUTES * 60_000).toISOString()).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'reading the last hour of the audit log failed; the charts start empty');
    });
    this.schedule();
  }

  /** The per-minute series and refusals by code, as the overview shows them. */
  rates(): RateSeries {
    return this.counts.series();
  }

  /** The newest events, oldest first (what a live view shows when it opens). */
  history(): readonly FeedEvent[] {
    return [...this.recent];
  }

  /** Calls `listener` with each event from now on; returns the function that stops it. */
  subscribe(listener: (event: FeedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stream.close();
    await this.polling;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.polling = this.readForward()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'reading new audit entries failed; trying again'))
        .finally(() => this.schedule());
    }, AUDIT_POLL_MS);
    this.timer.unref();
  }

  /**
   * The last hour, newest first (the scan stops at `since`, however long the log), and the
   * forward cursor: the log's head when the first page was read.
   */
  private async readWindow(since: string): Promise<void> {
    let before: number | undefined;
    for (;;) {
      const page: AuditPageView = await this.client.json('GET', '/v1/audit', isAuditPage, { query: { order: 'newest', since, limit: AUDIT_PAGE, before } });
      this.cursor ??= page.head;
      for (const entry of page.entries) this.count(entry);
      if (!page.more || this.closed) return;
      before = page.cursor;
    }
  }

  /** New entries after the cursor, page by page: counted and announced. */
  private async readForward(): Promise<void> {
    if (this.cursor === undefined) {
      // The window was not read (the server was down at start): begin at the head, not at entry 1.
      this.cursor = (await this.client.json('GET', '/v1/audit', isAuditPage, { query: { order: 'newest', limit: 1 } })).head;
      return;
    }
    for (;;) {
      const page: AuditPageView = await this.client.json('GET', '/v1/audit', isAuditPage, { query: { order: 'oldest', limit: AUDIT_PAGE, after: this.cursor } });
      for (const entry of page.entries) {
        this.count(entry);
        this.publish({ type: 'audit', deviceId: entry.deviceId, time: entry.time, entry });
      }
      this.cursor = page.cursor;
      if (!page.more || this.closed) return;
    }
  }

  private count(entry: AuditEntryView): void {
    if (entry.type === 'enrolled' || entry.type === 'renewed') this.counts.add(entry.type, entry.time);
    if (entry.type === 'refused') this.counts.add('refused', entry.time, entry.code);
  }

  private publish(event: FeedEvent): void {
    if (event.type === 'refused') this.counts.add('refused', event.time, event.code);
    this.recent.push(event);
    if (this.recent.length > RECENT_EVENTS) this.recent.shift();
    for (const listener of this.listeners) listener(event);
  }
}
