/**
 * Records the broker's periodic flushes (presence, device history) hand to the registry at a
 * time. A reconnect storm's flush of 10,000 records in one LevelDB batch held the event loop for
 * 0.3-0.46 s (reading them back, then abstract-level encoding every operation synchronously),
 * and every device connecting meanwhile waited behind it.
 */
export const WRITE_SLICE = 256;

/** What a flush could not write: the error, the refused slice and every later one. */
export interface UnwrittenSlices<T> {
  readonly error: unknown;
  readonly unwritten: T[];
}

/**
 * Writes `items` in slices of {@link WRITE_SLICE}, each once the one before is written, so the
 * event loop serves connections in between. Stops at the first refused slice.
 */
export async function writeInSlices<T>(items: readonly T[], write: (slice: readonly T[]) => Promise<void>): Promise<UnwrittenSlices<T> | undefined> {
  for (let start = 0; start < items.length; start += WRITE_SLICE) {
    try {
      await write(items.slice(start, start + WRITE_SLICE));
    } catch (error) {
      return { error, unwritten: items.slice(start) };
    }
  }
  return undefined;
}
