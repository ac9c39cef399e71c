import { setAsNewest } from './newest-first.ts';

/**
 * Upper bounds on how many history entries (`e!` keys) each device has on disk, so that a
 * history flush reads a device's stored keys only when the bound says they may exceed the limit.
 * That read (an iterator seek and a batch of keys) was most of a flush's cost: 300 devices with 3
 * entries each, one new entry per device and flush, 20 flushes: 126-148 µs of CPU per device with
 * the read, 19-21 µs without it (measured in process, LevelDB registry, 2026-12-03). Every
 * reconnecting device writes one entry when its previous session ends.
 *
 * A bound may be too high, never too low:
 * - a flush adds the number of keys it writes, though a rewritten entry (the same first
 *   occurrence, a growing count) replaces its key rather than adding one;
 * - the bound is exact again after each read, and set only once the batch is on disk;
 * - a device not remembered (never seen since the registry opened, or forgotten when the bounds
 *   were full or an import replaced the data) is read from disk.
 * Correct only because the LevelDB registry is the single writer of its data directory (LevelDB's
 * lock) and every history write goes through the one flush job that keeps these bounds.
 *
 * Bounded: the devices least recently written go first (about 100 bytes each).
 */
export class HistoryBounds {
  private readonly bounds = new Map<string, number>();

  constructor(private readonly capacity: number) {}

  /** The bound once `added` more keys are written, or undefined when the device must be read. */
  after(deviceId: string, added: number): number | undefined {
    const known = this.bounds.get(deviceId);
    return known === undefined ? undefined : known + added;
  }

  /** Records a device's bound (its batch is on disk), as its most recent use. */
  set(deviceId: string, bound: number): void {
    setAsNewest(this.bounds, deviceId, bound, this.capacity);
  }

  /** Forgets every bound (the data was replaced underneath). */
  clear(): void {
    this.bounds.clear();
  }
}
