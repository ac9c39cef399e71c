import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';

/**
 * Why a listener closed a socket itself. Stable values: they are the `reason` label of
 * `fleetgate_listener_sockets_closed_total` and the `code` of the log line, listed in
 * docs/errors.md ("TLS listeners").
 */
export const LISTENER_CLOSE_CODES = {
  TLS_HANDSHAKE_TIMEOUT: 'the TLS handshake (MQTT: and the CONNECT; HTTPS: and the first request) did not finish within listeners.handshakeTimeoutMs',
  TLS_HANDSHAKE_FAILED: 'the TLS handshake failed (garbage, a protocol error, an unsupported version or cipher)',
  TLS_PENDING_PER_ADDRESS: 'listeners.maxPendingPerAddress unfinished connections from this address already',
  TLS_PENDING_TOTAL: 'listeners.maxPendingConnections unfinished connections already',
  TLS_LOAD_SHED: 'the process is at its load limit (listeners.shedPendingConnections TLS handshakes in progress, or an event-loop delay above listeners.shedEventLoopDelayMs): closed before the handshake, retry later',
  TLS_RENEGOTIATION: 'the client tried a TLS 1.2 renegotiation',
  TLS_SHUTDOWN: 'the server is shutting down',
} as const;

/** A reason a listener closed a socket. */
export type ListenerCloseCode = keyof typeof LISTENER_CLOSE_CODES;

/** Bounds on connections that have not finished their handshake (config `listeners`). */
export interface ListenerLimits {
  /** Time from TCP accept to the end of the TLS handshake (MQTT: to the answered CONNECT; HTTPS: to the first request). */
  readonly handshakeTimeoutMs: number;
  /** Unfinished connections on one listener, in total. Beyond it new sockets are closed at once. */
  readonly maxPendingConnections: number;
  /** Unfinished connections from one source address on one listener. */
  readonly maxPendingPerAddress: number;
}

export interface ListenerGuardOptions {
  readonly limits: ListenerLimits;
  /**
   * When a connection stops counting as unfinished, and its timer stops: at the end of the TLS
   * handshake; at its first HTTP request (HTTPS listeners: a client that completes TLS and then
   * sends nothing is timed out like one that never starts it; once a request came, the HTTP
   * server's own timeouts take over); or when the owner calls {@link ListenerGuard.settle} (MQTT:
   * once the CONNECT has been answered).
   */
  readonly settleOn: 'handshake' | 'first-request' | 'manual';
  /** Called for every socket the guard closes (metrics, logs). */
  readonly onClose: (code: ListenerCloseCode, peer: string | undefined) => void;
  /** Called when the number of unfinished connections changes (a gauge). */
  readonly onPendingChange?: (pending: number) => void;
  /**
   * Load shedding (tls/load-shed.ts): whether to refuse a new socket at once, given the TLS
   * handshakes in progress now (accepted, not finished). Not the unfinished connections: once
   * its handshake is done a connection waits for its client (the CONNECT, the first request), and
   * a slow link or a slow client is no load on this process. Absent: only the fixed bounds apply
   * (the admin API: an operator must get in during a storm).
   */
  readonly shedWhen?: (handshakes: number) => boolean;
  /** Called for every completed handshake: whether it resumed a TLS session. */
  readonly onHandshake?: (resumed: boolean) => void;
}

/** What the guard knows about one accepted socket. */
interface Entry {
  readonly raw: Socket;
  readonly address: string;
  /** {@link connectionKey} of the raw socket while it is in `byKey`: until its TLS handshake is done. */
  key: string | undefined;
  tls: TLSSocket | undefined;
  timer: NodeJS.Timeout | undefined;
  pending: boolean;
  /** Accepted and its TLS handshake not finished: what load shedding counts. */
  handshaking: boolean;
  /** Closed by the guard (counted once). */
  closed: boolean;
}

/** The guard of one listener. */
export interface ListenerGuard {
  /** Marks a connection as established (MQTT: CONNECT answered): it stops counting and its timer stops. */
  settle(socket: TLSSocket): void;
  /** Unfinished connections now. */
  pendingCount(): number;
  /** Closes every connection that has not finished (at shutdown: they carry no request to finish). */
  closePending(): void;
  /** Closes every connection the listener accepted (at the end of the shutdown grace). */
  closeAll(): void;
}

const connectionKey = (socket: Socket): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;

/**
 * Hardens a TLS listener (node:tls or node:https) against connections that never finish:
 *
 * - a socket that has not finished within `handshakeTimeoutMs` is destroyed. Node's own
 *   `handshakeTimeout` (120 s) only emits `tlsClientError` and leaves the socket open, and an
 *   https server's request timeouts start only after the handshake;
 * - a failed handshake is destroyed too (`tlsClientError` only reports it);
 * - unfinished sockets are bounded per source address and in total; a socket beyond either bound
 *   is closed as soon as it is accepted, so silent sockets cannot use up the listener's
 *   `maxConnections` and lock real clients out;
 * - TLS 1.2 client-initiated renegotiation is refused (it costs the server a full handshake per
 *   request, and nothing in fleetgate needs it); TLS 1.3 has none;
 * - shutdown can close what is left at once.
 */
export function guardListener(server: TlsServer, options: ListenerGuardOptions): ListenerGuard {
  const { limits, onClose } = options;
  /** Every open connection, by its raw socket (what the shared 'close' listener is called on). */
  const entries = new Map<Socket, Entry>();
  const byKey = new Map<string, Entry>();
  const byTls = new WeakMap<TLSSocket, Entry>();
  const perAddress = new Map<string, number>();
  let pending = 0;
  let handshaking = 0;

  const handshakeOver = (entry: Entry): void => {
    if (!entry.handshaking) return;
    entry.handshaking = false;
    handshaking--;
  };
  const unpend = (entry: Entry): void => {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    if (!entry.pending) return;
    entry.pending = false;
    pending--;
    options.onPendingChange?.(pending);
    const count = (perAddress.get(entry.address) ?? 1) - 1;
    if (count <= 0) perAddress.delete(entry.address);
    else perAddress.set(entry.address, count);
  };
  const close = (entry: Entry, code: ListenerCloseCode): void => {
    if (entry.closed || (entry.raw.destroyed && (entry.tls?.destroyed ?? true))) return;
    entry.closed = true;
    onClose(code, entry.address);
    entry.tls?.destroy();
    entry.raw.destroy();
  };

  server.on('connection', (raw: Socket) => {
    // Registered after the TLS server's own listener: the TLS socket wrapping `raw` exists, and
    // destroying `raw` tears it down with it.
    if (raw.destroyed) return;
    const address = raw.remoteAddress ?? '';
    // Before the fixed bounds: under load the lower, load-driven threshold is the one that acts.
    if (options.shedWhen?.(handshaking)) {
      onClose('TLS_LOAD_SHED', address);
      raw.destroy();
      return;
    }
    if (pending >= limits.maxPendingConnections || (perAddress.get(address) ?? 0) >= limits.maxPendingPerAddress) {
      onClose(pending >= limits.maxPendingConnections ? 'TLS_PENDING_TOTAL' : 'TLS_PENDING_PER_ADDRESS', address);
      raw.destroy();
      return;
    }
    const key = connectionKey(raw);
    const entry: Entry = { raw, address, key, tls: undefined, timer: undefined, pending: true, handshaking: true, closed: false };
    handshaking++;
    entries.set(raw, entry);
    byKey.set(key, entry);
    pending++;
    options.onPendingChange?.(pending);
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    entry.timer = setTimeout(() => close(entry, 'TLS_HANDSHAKE_TIMEOUT'), limits.handshakeTimeoutMs);
    entry.timer.unref();
    // One listener function for every socket ('close' comes once): no closure and context per
    // socket, nor once()'s state object and bound wrapper, all held as long as the connection.
    raw.on('close', onRawClose);
  });
  function onRawClose(this: Socket): void {
    const entry = entries.get(this);
    if (!entry) return;
    handshakeOver(entry);
    unpend(entry);
    entries.delete(this);
    if (entry.key !== undefined && byKey.get(entry.key) === entry) byKey.delete(entry.key);
  }
  /** Refuses TLS 1.2 renegotiation: an attempt makes the socket emit this error; the owner's own 'error' handling may not close it. One function for every socket. */
  function onTlsError(this: TLSSocket, error: NodeJS.ErrnoException): void {
    if (error.code !== 'ERR_TLS_RENEGOTIATION_DISABLED') return;
    onClose('TLS_RENEGOTIATION', this.remoteAddress);
    this.destroy();
  }

  server.on('secureConnection', (socket: TLSSocket) => {
    const key = connectionKey(socket);
    const entry = byKey.get(key);
    byKey.delete(key);
    if (entry) {
      entry.key = undefined;
      entry.tls = socket;
      handshakeOver(entry);
      // Looked up by settle() or the first request; settled now, it never is.
      if (options.settleOn === 'handshake') unpend(entry);
      else byTls.set(socket, entry);
    }
    options.onHandshake?.(socket.isSessionReused());
    // Refuse TLS 1.2 renegotiation (onTlsError closes the socket).
    socket.disableRenegotiation();
    socket.on('error', onTlsError);
  });

  if (options.settleOn === 'first-request') {
    server.on('request', (request: { socket: TLSSocket }) => {
      const entry = byTls.get(request.socket);
      if (entry) {
        // Settled for good: later requests have nothing to look up.
        byTls.delete(request.socket);
        unpend(entry);
      }
    });
  }

  // A failed or timed-out handshake: Node reports it and keeps the socket (DESIGN pitfalls).
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    const entry = byKey.get(connectionKey(socket));
    const code: ListenerCloseCode = error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'TLS_HANDSHAKE_TIMEOUT' : 'TLS_HANDSHAKE_FAILED';
    if (entry) {
      close(entry, code);
    } else if (!socket.destroyed) {
      onClose(code, socket.remoteAddress);
    }
    socket.destroy();
  });

  return {
    settle(socket) {
      const entry = byTls.get(socket);
      if (entry) {
        // Settled for good: nothing looks it up again.
        byTls.delete(socket);
        unpend(entry);
      }
    },
    pendingCount: () => pending,
    closePending() {
      for (const entry of [...entries.values()]) if (entry.pending) close(entry, 'TLS_SHUTDOWN');
    },
    closeAll() {
      for (const entry of [...entries.values()]) close(entry, 'TLS_SHUTDOWN');
    },
  };
}

/** The listeners fleetgate guards, as metrics and logs name them. */
export type ListenerName = 'mqtt' | 'est' | 'admin';

/** Where a guard reports: a counter, a gauge and a logger (kept free of prom-client and pino types). */
export interface ListenerGuardReporting {
  readonly closed: (listener: ListenerName, code: ListenerCloseCode) => void;
  readonly pending: (listener: ListenerName, count: number) => void;
  readonly log: (fields: { listener: ListenerName; code: ListenerCloseCode; peer: string | undefined }) => void;
  /** A completed TLS handshake, full or resumed. */
  readonly handshake: (listener: ListenerName, resumed: boolean) => void;
}

/** {@link guardListener} with the reporting every fleetgate listener uses. */
export function guardNamedListener(
  server: TlsServer,
  listener: ListenerName,
  limits: ListenerLimits,
  settleOn: ListenerGuardOptions['settleOn'],
  report: ListenerGuardReporting,
  shedWhen?: (handshakes: number) => boolean,
): ListenerGuard {
  return guardListener(server, {
    limits,
    settleOn,
    ...(shedWhen ? { shedWhen } : {}),
    onHandshake: (resumed) => report.handshake(listener, resumed),
    onClose: (code, peer) => {
      report.closed(listener, code);
      report.log({ listener, code, peer });
    },
    onPendingChange: (count) => report.pending(listener, count),
  });
}
