import type { Logger } from 'pino';
import type { DeviceEventKind, DeviceEventRecord, Registry } from '../registry/types.ts';
import type { BrokerErrorCode } from './errors.ts';
import { writeInSlices } from './write-slices.ts';

/**
 * Why the broker ended a device's session: the refusal code that closed it (revoked, disabled,
 * certificate revoked or expired meanwhile, a refused PUBLISH, an oversized packet), or one of the
 * ordinary ends. Listed in docs/broker.md, "Device history".
 */
export type DropReason = BrokerErrorCode | 'takeover' | 'keepalive-timeout' | 'client-disconnect' | 'connection-lost' | 'server-shutdown';

/** What the device history writes: batches of entries, each device's kept to its newest. */
export type DeviceHistoryStore = Pick<Registry, 'recordDeviceEvents'>;

/** Bounds of the device history (broker.limits.history*). */
export interface DeviceHistoryLimits {
  /** Entries kept per device in the registry; older ones are deleted. */
  readonly keepPerDevice: number;
  /** Identical events (same device, kind and code) within this window are one entry with a count. */
  readonly summaryWindowMs: number;
  /** Open entries held in memory at most; an event that needs one more is counted, not recorded. */
  readonly maxOpen: number;
  /** How often changed entries are written (the presence interval). */
  readonly flushMs: number;
}

/** Longest detail kept (a refusal's detail may quote a client id of up to 65,535 bytes). */
const MAX_DETAIL = 200;

/** How an event was taken: a new entry, counted into an open one, or not recorded (over the cap). */
export type HistoryOutcome = 'entry' | 'summarised' | 'dropped';

interface OpenEntry {
  readonly deviceId: string;
  readonly kind: DeviceEventKind;
  readonly code: string;
  readonly firstMs: number;
  lastMs: number;
  count: number;
  peer: string | undefined;
  readonly detail: string | undefined;
}

/**
 * The broker's half of a device's history (refused CONNECTs, dropped sessions), kept out of the
 * hash-chained audit log: a device refused in a tight loop would otherwise append an audit entry
 * per attempt. Events are collected in memory and written in one batch per interval, like
 * presence (presence.ts). Identical events within `summaryWindowMs` are one entry, rewritten with
 * its growing count ("refused BROKER_DEVICE_REVOKED x500 between T1 and T2"), so a device adds at
 * most one entry per kind and code per window; `maxOpen` bounds the memory of all devices together.
 *
 * Callers name a device only from an identity the broker verified (a session, or a certificate
 * whose chain verified to the issuing CA): an unverified certificate's name is never written here.
 */
export class DeviceHistoryRecorder {
  private readonly open = new Map<string, OpenEntry>();
  /** Keys of open entries changed since the last write. */
  private readonly dirty = new Set<string>();
  /** Entries whose window closed before their last change was written. */
  private closed: DeviceEventRecord[] = [];
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly registry: DeviceHistoryStore,
    private readonly limits: DeviceHistoryLimits,
    private readonly logger: Logger,
    private readonly observe: (outcome: HistoryOutcome) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.flush(), limits.flushMs);
    this.timer.unref();
  }

  /** A CONNECT of a verified, registered device was refused with `code`. */
  refused(deviceId: string, code: BrokerErrorCode, peer: string | undefined, detail?: string): void {
    this.note(deviceId, 'refused', code, peer, detail);
  }

  /** A session of a device ended, for `reason`. */
  dropped(deviceId: string, reason: DropReason, peer: string | undefined): void {
    this.note(deviceId, 'dropped', reason, peer, undefined);
  }

  private note(deviceId: string, kind: DeviceEventKind, code: string, peer: string | undefined, detail: string | undefined): void {
    const at = this.now();
    const key = `${deviceId}\u0000${kind}\u0000${code}`;
    const current = this.open.get(key);
    if (current && at - current.firstMs < this.limits.summaryWindowMs) {
      current.count++;
      current.lastMs = Math.max(current.lastMs, at);
      current.peer = peer ?? current.peer;
      this.dirty.add(key);
      this.observe('summarised');
      return;
    }
    if (current) this.retire(key, current);
    else if (this.open.size >= this.limits.maxOpen) {
      this.expire(at);
      if (this.open.size >= this.limits.maxOpen) {
        this.observe('dropped');
        return;
      }
    }
    this.open.set(key, { deviceId, kind, code, firstMs: at, lastMs: at, count: 1, peer, detail: detail?.slice(0, MAX_DETAIL) });
    this.dirty.add(key);
    this.observe('entry');
  }

  /** Closes an entry; its last change is written with the next batch if it was not yet. */
  private retire(key: string, entry: OpenEntry): void {
    if (this.dirty.delete(key)) {
      // Bounded too: only a window shorter than the write interval closes entries faster.
      if (this.closed.length < this.limits.maxOpen) this.closed.push(record(entry));
      else this.observe('dropped');
    }
    this.open.delete(key);
  }

  /** Closes every entry whose window has passed. */
  private expire(at: number): void {
    for (const [key, entry] of this.open) if (at - entry.firstMs >= this.limits.summaryWindowMs) this.retire(key, entry);
  }

  /** Writes what changed since the last write. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = this.closed;
      this.closed = [];
      for (const key of this.dirty) {
        const entry = this.open.get(key);
        if (entry) batch.push(record(entry));
      }
      this.dirty.clear();
      this.expire(this.now());
      const failed = await writeInSlices(batch, (slice) => this.registry.recordDeviceEvents(slice, this.limits.keepPerDevice));
      if (failed) {
        // Kept for the next write while there is room (the registry's database may be down);
        // beyond `maxOpen` entries they are counted as dropped.
        const { unwritten } = failed;
        const room = Math.max(0, this.limits.maxOpen - this.closed.length);
        this.closed.unshift(...unwritten.slice(0, room));
        for (let index = room; index < unwritten.length; index++) this.observe('dropped');
        this.logger.error({ err: failed.error, kept: Math.min(room, unwritten.length) }, 'device history write failed; kept for the next write');
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

function record(entry: OpenEntry): DeviceEventRecord {
  return {
    deviceId: entry.deviceId,
    kind: entry.kind,
    code: entry.code,
    first: new Date(entry.firstMs).toISOString(),
    last: new Date(entry.lastMs).toISOString(),
    count: entry.count,
    ...(entry.peer === undefined ? {} : { peer: entry.peer }),
    ...(entry.detail === undefined ? {} : { detail: entry.detail }),
  };
}
