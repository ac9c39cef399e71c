import type { AuditEntry, AuditPage, AuditQuery } from './types.ts';

/**
 * How far an entry's time may run backwards against its sequence number before a time bound
 * stops a read. Entries are stamped with the server's clock when they are appended, so time
 * follows the sequence except when the clock is stepped back (NTP, a VM restored): a read newest
 * first stops at the first entry older than `since` minus this slack, instead of walking the
 * rest of the log to the first entry, and a read oldest first likewise at `until` plus this slack.
 */
const AUDIT_CLOCK_SLACK_MS = 10 * 60_000;

/** What a scan of the log yields: the entry's sequence number and the entry (undefined if missing). */
export interface ScannedAuditEntry {
  readonly seq: number;
  readonly entry: AuditEntry | undefined;
}

/**
 * One page of the audit log from a scan of the query's sequence range (the device's entries
 * when it names one), in the order asked for. Every registry engine scans its own way and shares
 * this: which entries match, where the page stops, and the cursor to go on from.
 *
 * @param head sequence number of the newest entry, read before the scan began (every entry up to
 *   it is readable by the scan).
 */
export async function readAuditPageFrom(scan: AsyncIterable<ScannedAuditEntry>, head: number, query: AuditQuery): Promise<AuditPage> {
  const newest = query.order === 'newest';
  const limit = query.limit ?? Number.POSITIVE_INFINITY;
  const maxScan = query.maxScan ?? Number.POSITIVE_INFINITY;
  const types = query.types && query.types.length > 0 ? new Set<string>(query.types) : undefined;
  const actor = query.actor;
  const actorMatches = actor === undefined ? () => true : actor.endsWith(':') ? (value: string) => value.startsWith(actor) : (value: string) => value === actor;
  const shifted = (iso: string | undefined, ms: number): string | undefined => (iso === undefined ? undefined : new Date(Date.parse(iso) + ms).toISOString());
  // Past these the rest of the range cannot match (up to the clock slack): the read ends there.
  const stopBelow = newest ? shifted(query.since, -AUDIT_CLOCK_SLACK_MS) : undefined;
  const stopAtOrAbove = newest ? undefined : shifted(query.until, AUDIT_CLOCK_SLACK_MS);

  const entries: AuditEntry[] = [];
  let cursor = newest ? (query.before ?? head + 1) : (query.after ?? 0);
  let scanned = 0;
  let more = false;
  for await (const { seq, entry } of scan) {
    if (scanned >= maxScan) {
      more = true;
      break;
    }
    scanned++;
    cursor = seq;
    if (!entry) continue;
    if (stopBelow !== undefined && entry.time < stopBelow) break;
    if (stopAtOrAbove !== undefined && entry.time >= stopAtOrAbove) break;
    if (query.since !== undefined && entry.time < query.since) continue;
    if (query.until !== undefined && entry.time >= query.until) continue;
    if (types && !types.has(entry.type)) continue;
    if (!actorMatches(entry.actor)) continue;
    entries.push(entry);
    if (entries.length >= limit) {
      more = true;
      break;
    }
  }
  return { entries, cursor, more, head };
}
