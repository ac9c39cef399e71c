/**
 * Progress lines go to stderr so that stdout carries only the result table (and can be piped).
 */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
