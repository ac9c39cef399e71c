import type { DeviceChange, DeviceRecord, DeviceState, Registry } from '../registry/types.ts';

/** What the broker needs to know about a device at CONNECT time. */
export interface DeviceAccessEntry {
  readonly state: DeviceState;
  readonly model: string;
}

/**
 * Device states and revoked serials held in memory, so every CONNECT is checked against the
 * registry without a disk read, including on TLS session resumption. Kept current by the
 * registry's change events (a revocation reaches it as soon as it is on disk).
 */
export class DeviceAccess {
  private readonly devices = new Map<string, DeviceAccessEntry>();
  private readonly revoked = new Set<string>();
  private unsubscribe: (() => void) | undefined;

  /** Loads every device and revoked serial, then follows changes. */
  static async load(registry: Registry, onChange?: (change: DeviceChange) => void): Promise<DeviceAccess> {
    const access = new DeviceAccess();
    // Subscribe first so a change that lands while loading is not missed.
    access.unsubscribe = registry.onDeviceChange((change) => {
      access.apply(change);
      onChange?.(change);
    });
    for (const device of await registry.listDevices()) access.remember(device);
    for (const serial of await registry.revokedSerials()) access.revoked.add(serial);
    return access;
  }

  private remember(device: DeviceRecord): void {
    this.devices.set(device.id, { state: device.state, model: device.model });
  }

  /** Applies a registry change. */
  apply(change: DeviceChange): void {
    this.remember(change.device);
    for (const serial of change.revokedSerials) this.revoked.add(serial);
  }

  device(deviceId: string): DeviceAccessEntry | undefined {
    return this.devices.get(deviceId);
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(serial);
  }

  close(): void {
    this.unsubscribe?.();
  }
}
