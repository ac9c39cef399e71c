import type { Level } from 'level';
import type { AuditEntry, AuditPage, AuditQuery } from '../types.ts';

/**
 * How far an entry's time may run backwards against its sequence number before a time bound
 * stops a read. Entries are stamped with the server's clock when they are appended, so time
 * follows the sequence except when the clock is stepped back (NTP, a VM restored): a read newest
 * first stops at the first entry older than `since` minus this slack, instead of walking the
 * rest of the log to the first entry, and a read oldest first likewise at `until` plus this slack.
 */
export const AUDIT_CLOCK_SLACK_MS = 10 * 60_000;

/** Sequence numbers in keys are zero-padded to 12 digits, so lexical order is numeric order. */
const pad = (seq: number): string => seq.toString().padStart(12, '0');

/** What a key range yields: the entry's sequence number and the entry (undefined if missing). */
interface Scanned {
  readonly seq: number;
  readonly entry: AuditEntry | undefined;
}

/**
 * Reads one page of the audit log from LevelDB. Keys are `a!<seq>` (every entry) and
 * `ad!<deviceId>!<seq>` (a device's entries), both in sequence order, so a read newest first is a
 * reverse iterator over the same range, and a cursor (`after`/`before`) is a range bound: a page
 * costs what it reads, not the size of the log. Filters are applied while iterating.
 *
 * @param head sequence number of the newest entry, read by the caller before this starts (so
 *   every entry up to it is on disk, and the iterator's snapshot holds it).
 */
export async function readLevelAuditPage(db: Level<string, string>, head: number, query: AuditQuery): Promise<AuditPage> {
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
  for await (const { seq, entry } of scan(db, query, newest)) {
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

/** The entries of the query's sequence range, through the device index when a device is named. */
async function* scan(db: Level<string, string>, query: AuditQuery, reverse: boolean): AsyncGenerator<Scanned> {
  const lower = query.after === undefined ? undefined : pad(query.after);
  const upper = query.before === undefined ? undefined : pad(query.before);
  if (query.deviceId !== undefined) {
    const prefix = `ad!${query.deviceId}!`;
    const range = { gt: lower === undefined ? prefix : `${prefix}${lower}`, lt: upper === undefined ? `ad!${query.deviceId}"` : `${prefix}${upper}`, reverse };
    for await (const key of db.keys(range)) {
      const digits = key.slice(prefix.length);
      const raw = await db.get(`a!${digits}`);
      yield { seq: Number(digits), entry: raw === undefined ? undefined : (JSON.parse(raw) as AuditEntry) };
    }
    return;
  }
  const range = { gt: lower === undefined ? 'a!' : `a!${lower}`, lt: upper === undefined ? 'a"' : `a!${upper}`, reverse };
  for await (const value of db.values(range)) {
    const entry = JSON.parse(value) as AuditEntry;
    yield { seq: entry.seq, entry };
  }
}
