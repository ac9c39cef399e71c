import { createHash } from 'node:crypto';
import type { AuditEntry, AuditEvent } from './types.ts';

/** Hash of the chain before the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** Fields in a fixed order, so the hash does not depend on how an object was built. */
function canonical(entry: Omit<AuditEntry, 'hash'>): string {
  return JSON.stringify([
    entry.seq,
    entry.time,
    entry.type,
    entry.deviceId ?? null,
    entry.serial ?? null,
    entry.code ?? null,
    entry.detail ?? null,
    entry.actor,
    entry.peer ?? null,
    entry.prevHash,
  ]);
}

/** Seals an event into the chain: each entry carries the hash of the previous one. */
export function sealAuditEntry(event: AuditEvent, seq: number, time: string, prevHash: string): AuditEntry {
  const unsealed = { ...event, seq, time, prevHash };
  const hash = createHash('sha256').update(canonical(unsealed)).digest('hex');
  return { ...unsealed, hash };
}

/** Whether an entry's hash matches its contents. */
export function auditEntryIntact(entry: AuditEntry): boolean {
  const { hash, ...rest } = entry;
  return createHash('sha256').update(canonical(rest)).digest('hex') === hash;
}

/** What checking an exported audit log (JSON Lines) found. */
export type AuditFileVerification =
  | {
      readonly ok: true;
      readonly entries: number;
      /** Sequence numbers of the first and last entry (an export of a range starts after 1). */
      readonly first: number;
      readonly last: number;
      /** Hash of the last entry: the head of the exported chain. */
      readonly head: string;
    }
  | {
      readonly ok: false;
      /** Entries that verified before the failure. */
      readonly entries: number;
      /** Sequence number of the first entry that fails (or that is missing). */
      readonly brokenAt: number;
      /** Line of the file where that was found (1-based; the line after the last for the head check). */
      readonly line: number;
      readonly reason: string;
    };

const HASH = /^[0-9a-f]{64}$/;

/** Whether a parsed line has the fields and types of an {@link AuditEntry}. */
function isAuditEntry(value: unknown): value is AuditEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entry = value as Record<string, unknown>;
  const optional = (name: string): boolean => entry[name] === undefined || typeof entry[name] === 'string';
  return (
    typeof entry.seq === 'number' &&
    Number.isSafeInteger(entry.seq) &&
    entry.seq >= 1 &&
    typeof entry.time === 'string' &&
    typeof entry.type === 'string' &&
    typeof entry.actor === 'string' &&
    typeof entry.prevHash === 'string' &&
    HASH.test(entry.prevHash) &&
    typeof entry.hash === 'string' &&
    HASH.test(entry.hash) &&
    ['deviceId', 'serial', 'code', 'detail', 'peer'].every(optional)
  );
}

/**
 * Checks an exported audit log line by line, with no server: each line one entry as JSON, in
 * sequence order, each entry's hash recomputed as {@link sealAuditEntry} computes it and each
 * `prevHash` the `hash` of the line before. An export of the whole log starts at entry 1 (whose
 * `prevHash` is {@link AUDIT_GENESIS}); an export of a range starts later and its first link is
 * taken as it stands. With a recorded head, the last entry's hash must be that head, so a file
 * cut short (or one that goes on past the head) fails too.
 */
export class AuditFileChecker {
  private entries = 0;
  private line = 0;
  private first: AuditEntry | undefined;
  private last: AuditEntry | undefined;
  private failure: AuditFileVerification | undefined;
  /** Sequence number of the entry whose hash is the recorded head, if one is. */
  private headAt: number | undefined;

  /** @param head a head hash recorded at export time (`fleetgate audit export` prints it). */
  constructor(private readonly head?: string) {}

  /** Feeds the next line; returns the failure once there is one (later lines are ignored). */
  push(text: string): AuditFileVerification | undefined {
    if (this.failure) return this.failure;
    this.line++;
    if (text.trim() === '') return undefined;
    const expected = this.last ? this.last.seq + 1 : 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.fail(expected, `line ${this.line} is not JSON`);
    }
    if (!isAuditEntry(parsed)) return this.fail(expected, `line ${this.line} is not an audit entry (seq, time, type, actor, prevHash, hash)`);
    const entry = parsed;
    if (this.last === undefined) {
      if (entry.seq === 1 && entry.prevHash !== AUDIT_GENESIS) return this.fail(1, 'entry 1 does not start the chain (its prevHash is not the genesis hash)');
    } else if (entry.seq !== expected) {
      return this.fail(expected, entry.seq > expected ? `entry ${expected} is missing (line ${this.line} holds entry ${entry.seq})` : `entry ${entry.seq} is out of order (line ${this.line}, after entry ${this.last.seq})`);
    } else if (entry.prevHash !== this.last.hash) {
      return this.fail(entry.seq, `entry ${entry.seq} does not follow entry ${this.last.seq}`);
    }
    if (!auditEntryIntact(entry)) return this.fail(entry.seq, `entry ${entry.seq} was altered`);
    this.first ??= entry;
    this.last = entry;
    if (entry.hash === this.head) this.headAt = entry.seq;
    this.entries++;
    return undefined;
  }

  /** The verdict once every line is in. */
  finish(): AuditFileVerification {
    if (this.failure) return this.failure;
    const { first, last, head } = this;
    const end = this.line + 1;
    if (!first || !last) {
      if (head !== undefined && head !== AUDIT_GENESIS) return this.fail(1, `the file holds no entries, but the head is ${head}`, end);
      return { ok: true, entries: 0, first: 0, last: 0, head: AUDIT_GENESIS };
    }
    if (head !== undefined && last.hash !== head) {
      const reason =
        this.headAt !== undefined
          ? `the file goes on past the head: ${head} is the hash of entry ${this.headAt}, and the file ends at entry ${last.seq}`
          : `the file ends at entry ${last.seq}, whose hash is not the head ${head}: entries after ${last.seq} are missing (the file is cut short), or the head is of another log`;
      return this.fail(this.headAt !== undefined ? this.headAt + 1 : last.seq + 1, reason, end);
    }
    return { ok: true, entries: this.entries, first: first.seq, last: last.seq, head: last.hash };
  }

  private fail(brokenAt: number, reason: string, line = this.line): AuditFileVerification {
    this.failure = { ok: false, entries: this.entries, brokenAt, line, reason };
    return this.failure;
  }
}
