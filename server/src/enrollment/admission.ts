/**
 * Admission counters of the EST listener. Both hand out a release function, so a slot is given
 * back exactly once whatever path the request takes.
 */

/** Gives a slot back; calling it twice is harmless. */
export type Release = () => void;

/**
 * At most `limit` requests being processed at once. The issuance routes take their slot only once
 * the request body has arrived: a client that sends its body slowly holds a socket, not a slot.
 */
export class ConcurrencyGate {
  private active = 0;

  constructor(private readonly limit: number) {}

  /** A slot, or undefined when all are taken. */
  tryAcquire(): Release | undefined {
    if (this.active >= this.limit) return undefined;
    this.active++;
    return once(() => this.active--);
  }

  /** Slots in use now. */
  get inUse(): number {
    return this.active;
  }
}

/**
 * At most `limit` requests in progress per remote address, from the request's headers until its
 * answer is sent (reading the body included). One address cannot fill the listener with slow
 * requests; the map holds only addresses with a request in progress, so it cannot grow beyond
 * the number of open connections.
 */
export class SourceGate {
  private readonly active = new Map<string, number>();

  constructor(private readonly limit: number) {}

  /** A place for one more request from `source`, or undefined when it has `limit` in progress. */
  tryAcquire(source: string): Release | undefined {
    const count = this.active.get(source) ?? 0;
    if (count >= this.limit) return undefined;
    this.active.set(source, count + 1);
    return once(() => {
      const left = (this.active.get(source) ?? 1) - 1;
      if (left <= 0) this.active.delete(source);
      else this.active.set(source, left);
    });
  }
}

function once(release: () => void): Release {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    release();
  };
}
