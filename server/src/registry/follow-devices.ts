import type { DeviceRecord, Registry } from './types.ts';

/** What following the devices reads: every device once, then the device changes. */
export type DeviceFollowStore = Pick<Registry, 'listDevices' | 'onDeviceChange'>;

/**
 * Hands `place` every device's current record: all of them once, then each change, until the
 * returned function unsubscribes. In-memory views of the fleet (the device census, the admin
 * API's sort orders) are kept this way. It subscribes first, so a change that lands while the
 * devices are read is not missed, and a device a change has already placed is not placed again
 * by the (older) listing.
 */
export async function followDevices(store: DeviceFollowStore, place: (device: DeviceRecord) => void): Promise<() => void> {
  let changedWhileLoading: Set<string> | undefined = new Set();
  const unsubscribe = store.onDeviceChange((change) => {
    changedWhileLoading?.add(change.device.id);
    place(change.device);
  });
  try {
    for (const device of await store.listDevices()) if (!changedWhileLoading.has(device.id)) place(device);
  } catch (error) {
    unsubscribe();
    throw error;
  }
  changedWhileLoading = undefined;
  return unsubscribe;
}
