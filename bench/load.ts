/** Results of a closed-loop load phase, in the order the items were given. */
export interface LoadPhase<R> {
  readonly results: R[];
  /** Wall clock from the first request to the last response. */
  readonly wallMs: number;
}

/**
 * Runs `send` once per item with at most `concurrency` in flight (a closed loop: each client
 * starts its next request when its previous one completes, like devices that enroll back to
 * back). `send` must not reject; a failure is a result. Bounded: every item is sent exactly once.
 */
export async function runClosedLoop<T, R>(
  items: readonly T[],
  concurrency: number,
  send: (item: T) => Promise<R>,
  onProgress?: (done: number, total: number) => void,
): Promise<LoadPhase<R>> {
  const results = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  const client = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await send(items[index] as T);
      done++;
      onProgress?.(done, items.length);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, client));
  return { results, wallMs: performance.now() - started };
}
