import { execFile } from 'node:child_process';
import { trackChild } from './cleanup.ts';

/** What a finished command printed. */
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** A command failed, timed out or could not be started. */
export class ExecError extends Error {
  override readonly name = 'ExecError';
}

/**
 * Runs a program without a shell and waits for it, at most `timeoutMs` (then it is killed).
 * Rejects unless it exits with 0; the error message carries the tail of its stderr.
 */
export function execCommand(
  file: string,
  args: readonly string[],
  options: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv; readonly input?: string },
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs, killSignal: 'SIGKILL', env: options.env ?? process.env, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const tail = stderr.trim().split('\n').slice(-5).join('\n');
          reject(new ExecError(`${file} ${args.join(' ')} failed: ${error.message}${tail ? `\n${tail}` : ''}`, { cause: error }));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    trackChild(child);
    // Commands that read stdin (openssl s_client) must see EOF, not wait on our terminal. A
    // program that exits without reading makes the write fail with EPIPE: that is not an error.
    child.stdin?.on('error', () => undefined);
    if (options.input === undefined) child.stdin?.end();
    else child.stdin?.end(options.input);
  });
}
