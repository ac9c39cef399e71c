import type { Client } from 'aedes';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/** The aedes 1.x client internals this module replaces (lib/client.js). */
interface EndWatchingClient {
  readonly conn: Duplex & { client?: Client };
  /** The cleanup of `stream.finished(conn, client.close)`: removes its listeners. aedes calls it in close(). */
  _eos: () => void;
}

function nothingToClean(): void {}

/** The socket events that end up with several listeners: Node's, the TLS listener guard's, aedes' and this module's. */
const LISTENED = ['error', 'end', 'close'] as const;

/**
 * Copies the socket's listener arrays of these events to arrays of their exact length. An
 * EventEmitter keeps a second listener in a two-element array and grows it on the third push
 * to room for 19 (168 bytes), which removing listeners never gives back: the 'error', 'end'
 * and 'close' arrays of every held socket, after finished() added and removed its listeners,
 * and again after a listener held only until aedes registers the client (the session table's).
 * The same listener functions in the same order; emit() works on a copy of the array, so
 * replacing it is safe (Node's `_events`, unchanged in its meaning since Node 0.x).
 */
export function compactListeners(socket: EventEmitter): void {
  const events = (socket as unknown as { _events?: Record<string, unknown> })._events;
  if (!events) return;
  for (const name of LISTENED) {
    const listeners = events[name];
    if (Array.isArray(listeners)) events[name] = listeners.slice();
  }
}

/** Closes the client of a socket that closed: one listener function for every socket (aedes sets `conn.client`). */
function closeClient(this: Duplex & { client?: Client }): void {
  this.client?.close();
}

/**
 * aedes closes a client when its socket ends, with `stream.finished(conn, client.close)`: seven
 * closures (onclose, onerror, onend, onfinish, onlegacyfinish, onrequest, cleanup), their context
 * and a bound close per connection, held as long as it is open. Each of its triggers already
 * closes the client, at the latest when the socket emits 'close', which a socket always does
 * once it ends, fails or is destroyed: an 'error' through aedes' own error listener, an 'end'
 * through its own 'end' listener, and 'finish' comes only from the socket being ended, which
 * destroys it (allowHalfOpen is off). So one shared 'close' listener does the same.
 * Call it right after `aedes.handle(socket)`, while the socket is open.
 */
export function closeOnSocketClose(client: Client): boolean {
  const internals = client as unknown as EndWatchingClient;
  // Another aedes: its own watch stays (a saving, not a feature; the broker says so once).
  if (typeof internals._eos !== 'function' || internals.conn?.client !== client) return false;
  if (internals.conn.destroyed) return true; // finished() reports that one itself
  internals._eos();
  internals._eos = nothingToClean;
  internals.conn.on('close', closeClient);
  compactListeners(internals.conn);
  return true;
}
