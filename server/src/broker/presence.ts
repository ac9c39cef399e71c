import type { Logger } from 'pino';
import type { PresenceRecord, Registry } from '../registry/types.ts';
import { writeInSlices } from './write-slices.ts';

/** What presence needs of the registry: the stored record to merge into, and a batch write. */
export type PresenceStore = Pick<Registry, 'getPresences' | 'recordPresence'>;

/**
 * Connection presence, collected in memory and written to the registry in one batch per
 * interval: a busy fleet touches "last seen" thousands of times a second, the registry once.
 */
export class PresenceRecorder {
  private readonly dirty = new Map<string, PresenceRecord>();
  private readonly lastSeen = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly registry: PresenceStore,
    flushMs: number,
    private readonly logger: Logger,
    /**
     * Cluster mode: this node, so a connection's presence says where it is, and a disconnect here
     * does not undo a connection elsewhere. Undefined for a node alone (nothing to tell apart).
     */
    private readonly nodeId: string | undefined,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  connected(deviceId: string, peer: string | undefined): void {
    const time = this.now().toISOString();
    this.dirty.set(deviceId, { deviceId, connected: true, lastSeen: time, connectedAt: time, peer, ...this.node() });
  }

  disconnected(deviceId: string): void {
    const time = this.now().toISOString();
    const previous = this.dirty.get(deviceId);
    this.dirty.set(deviceId, { ...previous, deviceId, connected: false, lastSeen: time, disconnectedAt: time, ...this.node() });
  }

  /**
   * The device was heard from (a message or a ping). Called for every message, so it only notes
   * the time; the record is built when the batch is written.
   */
  seen(deviceId: string): void {
    this.lastSeen.set(deviceId, Date.now());
  }

  private node(): { node?: string } {
    return this.nodeId === undefined ? {} : { node: this.nodeId };
  }

  /** Writes what changed since the last flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      for (const [deviceId, time] of this.lastSeen) {
        const previous = this.dirty.get(deviceId);
        const lastSeen = new Date(time).toISOString();
        if (!previous || previous.lastSeen < lastSeen) this.dirty.set(deviceId, previous ? { ...previous, lastSeen } : { deviceId, connected: true, lastSeen });
      }
      this.lastSeen.clear();
      if (this.dirty.size === 0) return;
      const batch = [...this.dirty.values()];
      this.dirty.clear();
      const failed = await writeInSlices(batch, async (slice) => {
        // Merge with what is stored, so a "seen" update keeps connectedAt/peer of the connection.
        // One read for the slice: one per record cost about 25 µs more each (LevelDB, measured).
        const storedRecords = await this.registry.getPresences(slice.map((update) => update.deviceId));
        const merged = slice.map((update, index) => {
          const stored = storedRecords[index];
          // The device moved to another node (a takeover): this node's disconnect is old news,
          // unless this node's connection began after the stored one (connected and gone within
          // one flush, after a node that died without writing its disconnects).
          if (this.nodeId !== undefined && !update.connected && stored?.connected && stored.node !== undefined && stored.node !== this.nodeId && !startedLater(update, stored)) return undefined;
          const record: PresenceRecord = { ...stored, ...update };
          // A process alone names no node: a name left by an earlier shared setup would be stale.
          if (this.nodeId === undefined) delete (record as { node?: string }).node;
          return record;
        });
        await this.registry.recordPresence(merged.filter((record): record is PresenceRecord => record !== undefined));
      });
      if (failed) {
        // The registry did not take it (its database is down): keep what is unwritten for the
        // next flush, under anything newer that arrived meanwhile. Bounded by the number of devices.
        for (const update of failed.unwritten) if (!this.dirty.has(update.deviceId)) this.dirty.set(update.deviceId, update);
        this.logger.error({ err: failed.error, pending: this.dirty.size }, 'presence write failed; kept for the next flush');
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

/** Whether `update`'s connection began after `stored`'s (ISO times compare as strings). */
function startedLater(update: PresenceRecord, stored: PresenceRecord): boolean {
  return update.connectedAt !== undefined && stored.connectedAt !== undefined && update.connectedAt > stored.connectedAt;
}
