import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `contents` to a fresh temporary file next to `path` with `mode`, fsynced; returns its
 * name. The caller renames or links it into place.
 */
export async function writeSyncedTemporary(path: string, contents: string | Buffer, mode: number): Promise<string> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(contents);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temporary;
}

/**
 * Replaces `path` atomically: write a temporary file in the same directory, fsync, rename.
 * Readers see the old contents or the new ones, never a mix.
 */
export async function writeFileAtomic(path: string, contents: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = await writeSyncedTemporary(path, contents, mode);
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
