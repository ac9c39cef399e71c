/** Which credential a slot holds. */
export type CredentialSlot =
  /** The factory bootstrap credential: kept for ever, the fallback when all else fails. */
  | 'bootstrap'
  /** The operational credential the device connects with. */
  | 'operational'
  /** A renewed credential not yet proven by a successful connection (make before break). */
  | 'pending';

/** A certificate chain (PEM, leaf first) and what the KeyProvider needs to load its key. */
export interface StoredCredential {
  readonly certPem: string;
  readonly key: string;
}

/**
 * Where a device keeps its credentials. Every `save` is atomic: after a crash the slot holds
 * the old credential or the new one, never a mix.
 */
export interface CredentialStore {
  /** The pinned root certificate (PEM). */
  root(): Promise<string>;
  load(slot: CredentialSlot): Promise<StoredCredential | undefined>;
  save(slot: CredentialSlot, credential: StoredCredential): Promise<void>;
  remove(slot: CredentialSlot): Promise<void>;
}

/** A store in memory, for tests and for devices that re-provision at every boot. */
export class MemoryCredentialStore implements CredentialStore {
  private readonly slots = new Map<CredentialSlot, StoredCredential>();

  constructor(
    private readonly rootPem: string,
    bootstrap?: StoredCredential,
  ) {
    if (bootstrap) this.slots.set('bootstrap', bootstrap);
  }

  async root(): Promise<string> {
    return this.rootPem;
  }

  async load(slot: CredentialSlot): Promise<StoredCredential | undefined> {
    return this.slots.get(slot);
  }

  async save(slot: CredentialSlot, credential: StoredCredential): Promise<void> {
    this.slots.set(slot, credential);
  }

  async remove(slot: CredentialSlot): Promise<void> {
    this.slots.delete(slot);
  }
}
