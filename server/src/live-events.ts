/**
 * What happens to devices on the broker as it happens: sessions that start and end, and
 * connections refused. The broker publishes; the admin API streams it (`GET /v1/events`) to the
 * operator dashboard. Nothing is stored here: the registry keeps presence and device history,
 * this is only the live view, and a subscriber that is not listening misses nothing it could not
 * read back from there.
 */

/** One event of the live feed (docs/admin-api.md, `GET /v1/events`). */
export type LiveEvent =
  | { readonly type: 'connected'; readonly deviceId: string; readonly time: string; readonly peer?: string }
  | { readonly type: 'disconnected'; readonly deviceId: string; readonly time: string; readonly reason: string }
  | { readonly type: 'refused'; readonly deviceId: string; readonly time: string; readonly code: string; readonly peer?: string };

/** The broker's side: where it reports events. */
export type LiveEventSink = (event: LiveEvent) => void;

/**
 * A fan-out of live events to the streams open now. A listener that throws is removed, so one
 * broken stream cannot stop the broker's hooks.
 */
export class LiveEvents {
  private readonly listeners = new Map<LiveEventSink, () => void>();

  /** The sink to hand to the broker. */
  readonly publish: LiveEventSink = (event) => {
    for (const listener of this.listeners.keys()) {
      try {
        listener(event);
      } catch {
        this.listeners.delete(listener);
      }
    }
  };

  /**
   * Calls `listener` with every event until the returned function is called, or until
   * {@link close}, which calls `closed` (a stream ends its response, so shutdown does not wait).
   */
  subscribe(listener: LiveEventSink, closed: () => void = () => undefined): () => void {
    this.listeners.set(listener, closed);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Ends every subscription (the server is shutting down). */
  close(): void {
    const closing = [...this.listeners.values()];
    this.listeners.clear();
    for (const closed of closing) closed();
  }

  /** Streams open now. */
  get size(): number {
    return this.listeners.size;
  }
}
