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
