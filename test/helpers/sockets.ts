import { connect as netConnect, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import { WaitTimeout, waitFor } from './wait.ts';

/** A TCP connection that never says anything, and when the server closed it. */
export interface SilentSocket {
  readonly socket: Socket;
  /** Resolves with the milliseconds from connect to close (the server closed it, or it failed). */
  readonly closed: Promise<number>;
}

/** Opens a TCP connection that sends nothing (destroyed at the end of the test). */
export function silentSocket(t: ExecutionContext, port: number, options: { localAddress?: string } = {}): Promise<SilentSocket> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = netConnect({ host: '127.0.0.1', port, localAddress: options.localAddress });
    t.teardown(() => socket.destroy());
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.on('error', () => undefined); // a reset by the server is one way to be closed
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('close', () => reject(new Error('closed before it connected')));
  });
}

/** Resolves with `promise`'s value, or with `fallback` after `ms` (a deadline, not a sleep). */
export function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** The value of one Prometheus series (0 when absent), e.g. `metric(url, 'x_total{code="A"}')`. */
export async function metric(metricsUrl: string, series: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Whether `check` came true within `ms` (polled by {@link waitFor}); false when the deadline passed. */
export async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  return waitFor(check, { what: 'a condition', timeoutMs: ms }).then(
    () => true,
    (error: unknown) => {
      if (error instanceof WaitTimeout) return false;
      throw error;
    },
  );
}
