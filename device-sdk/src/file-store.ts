import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SdkError } from './errors.ts';
import type { CredentialSlot, CredentialStore, StoredCredential } from './store.ts';

const SLOTS: readonly CredentialSlot[] = ['bootstrap', 'operational', 'pending'];

/**
 * Credentials in one directory: `root.crt` and one `<slot>.json` per slot (certificate chain and
 * key together, so replacing a credential is a single rename). Files are mode 0600, the
 * directory 0700. Writes go to a temporary file that is fsynced, renamed over the slot and the
 * directory fsynced: a crash at any point leaves the old credential or the new one.
 */
export class FileCredentialStore implements CredentialStore {
  constructor(readonly dir: string) {}

  /**
   * Provisions a store as a factory line would: the pinned root and the bootstrap credential
   * (e.g. the files `fleetgate bootstrap issue` wrote for this device).
   */
  static async provision(dir: string, material: { root: string; bootstrap: StoredCredential }): Promise<FileCredentialStore> {
    const store = new FileCredentialStore(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await store.writeAtomic('root.crt', material.root);
    await store.save('bootstrap', material.bootstrap);
    return store;
  }

  async root(): Promise<string> {
    return readFile(join(this.dir, 'root.crt'), 'utf8');
  }

  async load(slot: CredentialSlot): Promise<StoredCredential | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(slot), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as Partial<StoredCredential>;
      if (typeof parsed.certPem !== 'string' || typeof parsed.key !== 'string') throw new Error('missing fields');
      return { certPem: parsed.certPem, key: parsed.key };
    } catch (error) {
      // Cannot happen through this class (writes are atomic); someone edited the file.
      throw new SdkError('SDK_STORE_CORRUPT', `${this.path(slot)} is not a stored credential`, { cause: error });
    }
  }

  async save(slot: CredentialSlot, credential: StoredCredential): Promise<void> {
    await this.writeAtomic(`${slot}.json`, JSON.stringify({ certPem: credential.certPem, key: credential.key }));
  }

  async remove(slot: CredentialSlot): Promise<void> {
    await unlink(this.path(slot)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  private path(slot: CredentialSlot): string {
    if (!SLOTS.includes(slot)) throw new TypeError(`unknown credential slot ${slot}`);
    return join(this.dir, `${slot}.json`);
  }

  private async writeAtomic(name: string, contents: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const target = join(this.dir, name);
    const temporary = join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, target);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    // The rename itself must reach the disk before the caller relies on it.
    const directory = await open(this.dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}
