import type { WriteOp } from './write-queue.ts';
import { setAsNewest } from './newest-first.ts';

/** A read from disk in progress; a write of its key that lands meanwhile makes it stale. */
interface PendingRead {
  stale: boolean;
}

/**
 * Device records of the LevelDB registry (the JSON as stored) recently read or written, answered
 * from memory. An enrollment reads its device twice, once to decide and once more inside the
 * writer job that commits it, and a LevelDB hit costs ~0.1 ms of CPU (a thread-pool job and its
 * callback); with the cache the second read, and every read of a device written recently, is free.
 *
 * Correct only because the LevelDB registry is the single writer of its data directory (LevelDB's
 * lock) and every write of a device record goes through {@link written}, called as soon as its
 * batch is on disk:
 * - a write replaces (or removes) the remembered record before any caller learns that the write
 *   happened, so a revocation or a disable is never followed by the old state from memory;
 * - a read from disk that was in progress when a batch wrote its key may have read the old
 *   record: it is returned to its caller (as LevelDB would have) but not remembered.
 * The PostgreSQL registry has several writers and no such cache.
 *
 * Bounded: the oldest entries go first (a few hundred bytes each).
 */
export class DeviceRecordCache {
  private readonly records = new Map<string, string>();
  private readonly pending = new Map<string, Set<PendingRead>>();

  constructor(private readonly capacity: number) {}

  /** The record stored under `key`, from memory or else read by `load` (and remembered). */
  async read(key: string, load: (key: string) => Promise<string | undefined>): Promise<string | undefined> {
    const remembered = this.records.get(key);
    if (remembered !== undefined) return remembered;
    const read: PendingRead = { stale: false };
    let reads = this.pending.get(key);
    if (!reads) this.pending.set(key, (reads = new Set()));
    reads.add(read);
    try {
      const value = await load(key);
      if (value !== undefined && !read.stale) this.remember(key, value);
      return value;
    } finally {
      reads.delete(read);
      if (reads.size === 0 && this.pending.get(key) === reads) this.pending.delete(key);
    }
  }

  /** A batch is on disk: its device writes (`isDeviceKey`) replace what is remembered. */
  written(ops: readonly WriteOp[], isDeviceKey: (key: string) => boolean): void {
    for (const op of ops) {
      if (!isDeviceKey(op.key)) continue;
      for (const read of this.pending.get(op.key) ?? []) read.stale = true;
      if (op.type === 'put') this.remember(op.key, op.value);
      else this.records.delete(op.key);
    }
  }

  /** Forgets everything (the database was written underneath, e.g. by an import). */
  clear(): void {
    this.records.clear();
    for (const reads of this.pending.values()) for (const read of reads) read.stale = true;
  }

  private remember(key: string, value: string): void {
    setAsNewest(this.records, key, value, this.capacity);
  }
}
