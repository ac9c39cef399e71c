import type { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

/** What a wait is for, and how long it may take. */
export interface WaitOptions {
  /** Named in the timeout error: "timed out after 5000 ms waiting for <what>". A function is read when the wait fails, so it can report the last state seen. */
  readonly what: string | (() => string);
  /** Deadline (default 10 s: generous, because the suite shares a loaded machine). */
  readonly timeoutMs?: number;
}

/** Options of {@link waitFor}. */
export interface PollOptions extends WaitOptions {
  /** Pause between two checks (default 20 ms). */
  readonly intervalMs?: number;
}

/** What a condition returns once it holds. */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 20;

/** The error every wait here throws when its deadline passes. */
export class WaitTimeout extends Error {
  override readonly name = 'WaitTimeout';
}

function describe(what: WaitOptions['what']): string {
  return typeof what === 'function' ? what() : what;
}

/**
 * Polls `condition` until it returns a truthy value (which it then returns), or throws a
 * {@link WaitTimeout} naming `what` once `timeoutMs` has passed. The condition is always checked
 * once more at the deadline, so a slow machine fails only when the condition really never held.
 * Use it where no event says "it happened" (a registry written by a periodic flush, a counter).
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: PollOptions): Promise<Truthy<T>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as Truthy<T>;
    const left = deadline - performance.now();
    if (left <= 0) throw new WaitTimeout(`timed out after ${timeoutMs} ms waiting for ${describe(options.what)}`);
    await delay(Math.min(intervalMs, left));
  }
}

/**
 * Settles like `promise`, or throws a {@link WaitTimeout} naming `what` if it has not settled
 * within `timeoutMs`. For waits on an event that is already a promise (a socket 'close', a
 * process exit, a lifecycle loop ending).
 */
export async function withDeadline<T>(promise: Promise<T>, options: WaitOptions): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const abort = new AbortController();
  const timeout = delay(timeoutMs, undefined, { signal: abort.signal }).then(
    () => {
      throw new WaitTimeout(`timed out after ${timeoutMs} ms waiting for ${describe(options.what)}`);
    },
    () => undefined as never, // cancelled: the promise settled first
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    abort.abort();
  }
}

/**
 * The arguments of the first `event` from `emitter` for which `accept` holds, within the
 * deadline. The listener is attached at call time: create the promise before the action that
 * causes the event.
 */
export function nextEvent<A extends unknown[] = unknown[]>(emitter: Pick<EventEmitter, 'on' | 'off'>, event: string, options: WaitOptions & { accept?: (...args: A) => boolean }): Promise<A> {
  let listener: ((...args: unknown[]) => void) | undefined;
  const happened = new Promise<A>((resolve) => {
    listener = (...args: unknown[]): void => {
      if (options.accept && !options.accept(...(args as A))) return;
      resolve(args as A);
    };
    emitter.on(event, listener);
  });
  return withDeadline(happened, options).finally(() => {
    if (listener) emitter.off(event, listener);
  });
}

/**
 * Waits until the wall clock has passed `instant` (a certificate's notAfter, say): polls the
 * clock up to that moment instead of sleeping a fixed margin past it. Past means strictly
 * later, so both a `now > notAfter` check and OpenSSL's `notAfter <= now` (whole seconds) see
 * it as passed.
 */
export async function untilClockPasses(instant: Date | number, options: { what: string; timeoutMs?: number }): Promise<void> {
  const target = typeof instant === 'number' ? instant : instant.getTime();
  await waitFor(() => Date.now() > target, { what: options.what, timeoutMs: options.timeoutMs ?? Math.max(0, target - Date.now()) + DEFAULT_TIMEOUT_MS, intervalMs: 10 });
}
