import type { CredentialRecord, DeviceChange, DeviceRecord, DeviceState, Registry } from '../registry/types.ts';

/**
 * What the broker's in-memory view loads and follows: devices, revoked serials and service
 * credentials, their change events, and a service certificate recorded at its first use.
 */
export type DeviceAccessStore = Pick<Registry, 'listDevices' | 'getDevice' | 'listCertificates' | 'revokedSerials' | 'listCredentials' | 'recordCredential' | 'onDeviceChange' | 'onCredentialChange'>;

/** What the broker needs to know about a device at CONNECT time. */
export interface DeviceAccessEntry {
  readonly state: DeviceState;
  readonly model: string;
  /** Serial of the device's current operational certificate. */
  readonly certSerial: string;
  /** Serial of the certificate the last renewal replaced. */
  readonly previousSerial: string | undefined;
}

/** Where a certificate stands in its device's line: see {@link DeviceAccess.standing}. */
export type CertificateStanding = 'current' | 'previous' | 'superseded';

/**
 * Device states and revoked serials held in memory, so every CONNECT is checked against the
 * registry without a disk read, including on TLS session resumption. Kept current by the
 * registry's change events (a revocation reaches it as soon as it is on disk).
 */
export class DeviceAccess {
  private readonly devices = new Map<string, DeviceAccessEntry>();
  private readonly revoked = new Set<string>();
  /** Per device, the serial of the current certificate once it has connected. */
  private readonly currentSeen = new Map<string, string>();
  /** Serials of service certificates on record (recorded at issue or at first use). */
  private readonly services = new Set<string>();
  private readonly unsubscribes: (() => void)[] = [];

  private constructor(private readonly registry: DeviceAccessStore) {}

  /**
   * Loads every device, revoked serial and service credential, then follows changes.
   * `onServiceRevoked` hears of a service certificate revoked (the broker drops its sessions).
   */
  static async load(registry: DeviceAccessStore, onChange?: (change: DeviceChange) => void, onServiceRevoked?: (serial: string) => void): Promise<DeviceAccess> {
    const access = new DeviceAccess(registry);
    // Subscribe first so a change that lands while loading is not missed.
    access.unsubscribes.push(
      registry.onDeviceChange((change) => {
        access.apply(change);
        onChange?.(change);
      }),
      registry.onCredentialChange((record) => {
        if (record.kind !== 'service') return;
        access.rememberService(record);
        if (record.state === 'revoked') onServiceRevoked?.(record.serial);
      }),
    );
    for (const device of await registry.listDevices()) access.remember(device);
    for (const serial of await registry.revokedSerials()) access.revoked.add(serial);
    for (const record of await registry.listCredentials('service')) access.rememberService(record);
    return access;
  }

  /**
   * A revoked service certificate joins the revoked serials: `authenticate` refuses it like a
   * revoked device certificate (CONNACK 5, BROKER_CERT_REVOKED). Device and service serials come
   * from the same CA's 128-bit random serials, so they share one set.
   */
  private rememberService(record: CredentialRecord): void {
    this.services.add(record.serial);
    if (record.state === 'revoked') this.revoked.add(record.serial);
  }

  /**
   * Records a service certificate at its first accepted CONNECT when its issue was not recorded
   * (issued before the registry kept credentials, or its record file was not imported), so that
   * `fleetgate service list` shows it and `service revoke` can name it.
   */
  async serviceConnected(name: string, serial: string, notAfter: number, notBefore: number): Promise<void> {
    if (this.services.has(serial)) return;
    this.services.add(serial);
    const now = new Date().toISOString();
    await this.registry.recordCredential(
      { kind: 'service', name, serial, issuedAt: new Date(notBefore).toISOString(), expiresAt: new Date(notAfter).toISOString(), state: 'valid', recordedVia: 'first-use', recordedAt: now },
      `service:${name}`,
    );
  }

  private remember(device: DeviceRecord): void {
    this.devices.set(device.id, { state: device.state, model: device.model, certSerial: device.certSerial, previousSerial: device.previousSerial });
  }

  /** Applies a registry change. */
  apply(change: DeviceChange): void {
    this.remember(change.device);
    for (const serial of change.revokedSerials) this.revoked.add(serial);
  }

  device(deviceId: string): DeviceAccessEntry | undefined {
    return this.devices.get(deviceId);
  }

  /**
   * A device this process has not heard of, read from the registry. With a registry shared by
   * several processes, a device enrolled through another one a moment ago may not have reached
   * this one's change feed yet (or the feed was down); its revoked certificates are read with it.
   * Throws the registry's error (`REGISTRY_UNAVAILABLE` while the database is down).
   */
  async lookup(deviceId: string): Promise<DeviceAccessEntry | undefined> {
    const device = await this.registry.getDevice(deviceId);
    if (!device) return undefined;
    const revoked = (await this.registry.listCertificates(deviceId)).filter((record) => record.status === 'revoked');
    // A change event may have arrived meanwhile: it is at least as new as what was read.
    if (!this.devices.has(deviceId)) this.remember(device);
    for (const record of revoked) this.revoked.add(record.serial);
    return this.devices.get(deviceId);
  }

  /**
   * Whether a device certificate may still connect. The current one may. The one the last renewal
   * replaced may too, until the current one has been used: the SDK renews over EST, then connects
   * with the new certificate (taking the old session over) before it drops the old one; if that
   * CONNACK does not reach it in time it goes back to the old certificate; and a device whose
   * renewal answer was lost still holds only the old one (it renews again with it and gets the
   * same certificate). "Used" means a session with the current certificate sent a packet after
   * its CONNACK (so the device had the CONNACK), see {@link currentUsed}. Any older certificate is
   * superseded. This is remembered in memory: after a restart the previous certificate is admitted
   * again until the current one is used, a window that ends with the old certificate's expiry.
   */
  standing(deviceId: string, serial: string): CertificateStanding {
    const device = this.devices.get(deviceId);
    if (!device || serial === device.certSerial) return 'current';
    if (serial === device.previousSerial && this.currentSeen.get(deviceId) !== device.certSerial) return 'previous';
    return 'superseded';
  }

  /** Remembers that a device used a session of its current certificate (a packet after CONNACK). */
  currentUsed(deviceId: string, serial: string): void {
    if (this.devices.get(deviceId)?.certSerial === serial) this.currentSeen.set(deviceId, serial);
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(serial);
  }

  close(): void {
    for (const unsubscribe of this.unsubscribes) unsubscribe();
  }
}
