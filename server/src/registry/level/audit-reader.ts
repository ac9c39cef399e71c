import type { Level } from 'level';
import type { AuditEntry, AuditPage, AuditQuery } from '../types.ts';
import { readAuditPageFrom, type ScannedAuditEntry } from '../audit-page.ts';

/** Sequence numbers in keys are zero-padded to 12 digits, so lexical order is numeric order. */
const pad = (seq: number): string => seq.toString().padStart(12, '0');

/**
 * Reads one page of the audit log from LevelDB. Keys are `a!<seq>` (every entry) and
 * `ad!<deviceId>!<seq>` (a device's entries), both in sequence order, so a read newest first is a
 * reverse iterator over the same range, and a cursor (`after`/`before`) is a range bound: a page
 * costs what it reads, not the size of the log. Filters are applied while iterating.
 *
 * @param head sequence number of the newest entry, read by the caller before this starts (so
 *   every entry up to it is on disk, and the iterator's snapshot holds it).
 */
export function readLevelAuditPage(db: Level<string, string>, head: number, query: AuditQuery): Promise<AuditPage> {
  return readAuditPageFrom(scan(db, query, query.order === 'newest'), head, query);
}

/** The entries of the query's sequence range, through the device index when a device is named. */
async function* scan(db: Level<string, string>, query: AuditQuery, reverse: boolean): AsyncGenerator<ScannedAuditEntry> {
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
