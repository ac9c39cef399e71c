import { followDevices, type DeviceFollowStore } from '../registry/follow-devices.ts';
import type { DeviceQuery, DeviceRecord, DeviceState } from '../registry/types.ts';

/** Orders the device list offers beyond the id order the registries page by themselves. */
export const DEVICE_SORT_KEYS = ['state', 'model', 'expires'] as const;
export type DeviceSortKey = (typeof DEVICE_SORT_KEYS)[number];

/** What a device is sorted and filtered by. */
interface Entry {
  readonly id: string;
  readonly state: DeviceState;
  readonly model: string;
  readonly certNotAfter: string;
}

/** A page of the list in one of the {@link DEVICE_SORT_KEYS}, with the list's filters. */
export interface SortedDeviceQuery extends Omit<DeviceQuery, 'limit'> {
  readonly sort: DeviceSortKey;
  readonly limit: number;
}

/** The device `after` names is not in the list (any more): the cursor cannot be placed. */
export class UnknownCursorError extends Error {
  override readonly name = 'UnknownCursorError';
}

function sortValue(entry: Entry, key: DeviceSortKey): string {
  return key === 'state' ? entry.state : key === 'model' ? entry.model : entry.certNotAfter;
}

/**
 * The device list sorted by state, model or certificate expiry, with the same cursor as the id
 * order (the id of the last device of the previous page) and ids breaking ties, so a page is
 * stable. Neither registry has an index for these orders, and a scan of 100,000 LevelDB records
 * takes about 0.55 s (bench/device-list.ts), so the order is kept in memory instead: every
 * device's id, state, model and expiry are read once, then follow the registry's change events,
 * as the device census does. A sorted array per order is made on the first request after a
 * change and reused until the next change: at 100,000 devices the first page after a change took
 * 65-110 ms (the sort), the pages after it 0.01-0.02 ms (measured in process, 2026-12-02).
 */
export class DeviceOrder {
  private readonly entries = new Map<string, Entry>();
  private readonly sorted = new Map<DeviceSortKey, Entry[]>();
  private unsubscribe: (() => void) | undefined;

  private constructor() {}

  /** Reads every device, then follows the registry's changes until {@link close}. */
  static async start(store: DeviceFollowStore): Promise<DeviceOrder> {
    const order = new DeviceOrder();
    order.unsubscribe = await followDevices(store, (device) => order.place(device));
    return order;
  }

  private place(device: Pick<DeviceRecord, 'id' | 'state' | 'model' | 'certNotAfter'>): void {
    this.entries.set(device.id, { id: device.id, state: device.state, model: device.model, certNotAfter: device.certNotAfter });
    this.sorted.clear();
  }

  private inOrder(key: DeviceSortKey): Entry[] {
    let list = this.sorted.get(key);
    if (!list) {
      list = [...this.entries.values()].sort((a, b) => {
        const [x, y] = [sortValue(a, key), sortValue(b, key)];
        if (x !== y) return x < y ? -1 : 1;
        return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      });
      this.sorted.set(key, list);
    }
    return list;
  }

  /** The ids of one page, in order; throws {@link UnknownCursorError} when `after` names no device. */
  page(query: SortedDeviceQuery): string[] {
    const list = this.inOrder(query.sort);
    const descending = query.order === 'desc';
    let start = descending ? list.length - 1 : 0;
    if (query.after !== undefined) {
      const cursor = this.entries.get(query.after);
      if (!cursor) throw new UnknownCursorError(query.after);
      start = this.positionAfter(list, cursor, query.sort, descending);
    }
    const expiresBefore = query.expiresBefore === undefined ? undefined : Date.parse(query.expiresBefore);
    const ids: string[] = [];
    for (let index = start; index >= 0 && index < list.length && ids.length < query.limit; index += descending ? -1 : 1) {
      const entry = list[index] as Entry;
      if (query.state !== undefined && entry.state !== query.state) continue;
      if (query.model !== undefined && entry.model !== query.model) continue;
      if (query.prefix !== undefined && !entry.id.startsWith(query.prefix)) continue;
      if (expiresBefore !== undefined && !(Date.parse(entry.certNotAfter) < expiresBefore)) continue;
      ids.push(entry.id);
    }
    return ids;
  }

  /** Index of the first entry after `cursor` in the direction of reading (binary search on value, then id). */
  private positionAfter(list: readonly Entry[], cursor: Entry, key: DeviceSortKey, descending: boolean): number {
    const value = sortValue(cursor, key);
    // First index whose (value, id) is greater than the cursor's.
    let low = 0;
    let high = list.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const entry = list[middle] as Entry;
      const entryValue = sortValue(entry, key);
      const greater = entryValue > value || (entryValue === value && entry.id > cursor.id);
      if (greater) high = middle;
      else low = middle + 1;
    }
    // Ascending: that index. Descending: the entry before the cursor, i.e. before the first one not
    // smaller than it.
    if (!descending) return low;
    return list[low - 1]?.id === cursor.id ? low - 2 : low - 1;
  }

  close(): void {
    this.unsubscribe?.();
  }
}
