import type { BrokerErrorCode } from './errors.ts';

/** The caps on retained messages (from `broker.limits`). */
export interface RetainedLimits {
  readonly maxRetainedPerDevice: number;
  readonly maxRetainedBytesPerDevice: number;
  readonly maxRetainedBytes: number;
}

/** The answer to a retained PUBLISH. */
export type RetainedVerdict =
  | { readonly admitted: true }
  | { readonly admitted: false; readonly code: Extract<BrokerErrorCode, 'BROKER_RETAINED_LIMIT' | 'BROKER_RETAINED_FULL'>; readonly detail: string };

interface Stored {
  readonly owner: string;
  readonly bytes: number;
}

interface Usage {
  count: number;
  bytes: number;
}

/**
 * Who holds which retained message, so one device cannot grow the broker's memory without bound.
 * aedes keeps retained messages in its persistence (one per topic) and never lets them go by
 * itself; this index mirrors it: a retained message is charged to the client that published it
 * (a device, or a service with all its instances), and a later retained message on the same topic
 * moves the charge to its publisher. An empty retained payload deletes the topic's message
 * (MQTT-3.3.1-10/11) and frees the charge.
 *
 * Size counted: topic + payload bytes (what the persistence holds, without its fixed overhead).
 */
export class RetainedQuota {
  private readonly topics = new Map<string, Stored>();
  private readonly owners = new Map<string, Usage>();
  private bytes = 0;

  constructor(private readonly limits: RetainedLimits) {}

  /**
   * Decides on a retained PUBLISH that passed every other check and, if admitted, records it.
   * Called before aedes stores it (authorizePublish), so a refusal leaves the stored message and
   * the charges as they were.
   */
  admit(owner: string, topic: string, payloadBytes: number): RetainedVerdict {
    const previous = this.topics.get(topic);
    if (payloadBytes === 0) {
      this.remove(topic);
      return { admitted: true };
    }
    const size = Buffer.byteLength(topic) + payloadBytes;
    const usage = this.owners.get(owner) ?? { count: 0, bytes: 0 };
    const replacesOwn = previous?.owner === owner;
    const count = usage.count + (replacesOwn ? 0 : 1);
    const ownerBytes = usage.bytes - (replacesOwn ? (previous?.bytes ?? 0) : 0) + size;
    if (count > this.limits.maxRetainedPerDevice) {
      return { admitted: false, code: 'BROKER_RETAINED_LIMIT', detail: `${usage.count} retained messages held; at most ${this.limits.maxRetainedPerDevice}` };
    }
    if (ownerBytes > this.limits.maxRetainedBytesPerDevice) {
      return { admitted: false, code: 'BROKER_RETAINED_LIMIT', detail: `${ownerBytes} retained bytes; at most ${this.limits.maxRetainedBytesPerDevice}` };
    }
    const total = this.bytes - (previous?.bytes ?? 0) + size;
    if (total > this.limits.maxRetainedBytes) {
      return { admitted: false, code: 'BROKER_RETAINED_FULL', detail: `${total} retained bytes in the broker; at most ${this.limits.maxRetainedBytes}` };
    }
    this.remove(topic);
    const after = this.owners.get(owner) ?? { count: 0, bytes: 0 };
    after.count++;
    after.bytes += size;
    this.owners.set(owner, after);
    this.topics.set(topic, { owner, bytes: size });
    this.bytes += size;
    return { admitted: true };
  }

  private remove(topic: string): void {
    const stored = this.topics.get(topic);
    if (!stored) return;
    this.topics.delete(topic);
    this.bytes -= stored.bytes;
    const usage = this.owners.get(stored.owner);
    if (!usage) return;
    usage.count--;
    usage.bytes -= stored.bytes;
    if (usage.count === 0) this.owners.delete(stored.owner);
  }

  /** Forgets every charge: the messages they counted are gone (a cluster's Redis restarted empty). */
  clear(): void {
    this.topics.clear();
    this.owners.clear();
    this.bytes = 0;
  }

  /** What one owner holds. */
  usage(owner: string): { readonly count: number; readonly bytes: number } {
    const usage = this.owners.get(owner);
    return { count: usage?.count ?? 0, bytes: usage?.bytes ?? 0 };
  }

  /** Retained messages held. */
  get count(): number {
    return this.topics.size;
  }

  /** Bytes held. */
  get totalBytes(): number {
    return this.bytes;
  }
}
