import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CliError } from './errors.ts';

/**
 * Where an export (`audit export`, `registry export`) writes: a temporary file renamed into place
 * once complete, so a failure never leaves half a file under the name asked for; or stdout.
 */
export interface ExportSink {
  write(text: string): Promise<void>;
  /** Puts the file in place (or does nothing for stdout). */
  commit(): Promise<void>;
  /** Removes the temporary file after a failure. */
  abandon(): Promise<void>;
}

function outputFailed(path: string, error: unknown): CliError {
  const code = (error as NodeJS.ErrnoException).code;
  return new CliError('CLI_OUTPUT_FAILED', `cannot write --out ${path}${code ? ` (${code})` : ''}`, { cause: error });
}

/** A sink for `--out FILE` (undefined: stdout); the file gets `mode`. */
export async function exportSink(out: string | undefined, mode = 0o644): Promise<ExportSink> {
  if (out === undefined) {
    return {
      write: (text) =>
        new Promise<void>((resolvePromise) => {
          if (process.stdout.write(text)) resolvePromise();
          else process.stdout.once('drain', resolvePromise);
        }),
      commit: async () => undefined,
      abandon: async () => undefined,
    };
  }
  const temporary = `${out}.${randomBytes(6).toString('hex')}.tmp`;
  let handle: FileHandle;
  try {
    await mkdir(dirname(out), { recursive: true });
    handle = await open(temporary, 'wx', mode);
  } catch (error) {
    throw outputFailed(out, error);
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    write: async (text) => {
      try {
        await handle.write(text);
      } catch (error) {
        throw outputFailed(out, error);
      }
    },
    commit: async () => {
      try {
        await handle.sync();
        await close();
        await rename(temporary, out);
      } catch (error) {
        throw outputFailed(out, error);
      }
    },
    abandon: async () => {
      await close().catch(() => undefined);
      await rm(temporary, { force: true });
    },
  };
}

