import { randomFillSync } from 'node:crypto';

/**
 * The ticket keys one listener accepts: the current window's, which encrypts every new ticket and
 * decrypts, and the previous window's, which only decrypts and then has the session renewed with a
 * ticket of the current window. So a ticket stays good across one window boundary, and a device
 * reconnecting right after a rotation (a storm after a restart, say) still resumes.
 *
 * Node keeps one ticket key per secure context (`setTicketKeys`), and OpenSSL decrypts with the
 * listener's own context (a second context from `SNICallback` does not help: tried). Node's only
 * way to offer two keys is its ticket key callback on the secure context
 * (`enableTicketKeyCallback`, `onticketkeycallback`): internal, but long-standing and used
 * by Node's own tests. `installTicketKeyRing` feature-detects it, and the caller falls back to
 * `setTicketKeys` (one window) where it is missing.
 */

/** Node's ticket key: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES-128 key. */
const PART_BYTES = 16;

/**
 * What Node's callback returns: [result, hmac key, aes key] to decrypt, plus [name, iv] to
 * encrypt. Result 1: decrypted; 2: decrypted, issue a fresh ticket; 0: not ours (a full handshake).
 */
type TicketKeyAnswer = [result: 0 | 1 | 2, hmac: Buffer, aes: Buffer, name?: Buffer, iv?: Buffer];

interface TicketKey {
  readonly name: Buffer;
  readonly hmac: Buffer;
  readonly aes: Buffer;
}

/** `key` is one of deriveTicketKeys' 48-byte keys. */
function splitKey(key: Buffer): TicketKey {
  return { name: key.subarray(0, PART_BYTES), hmac: key.subarray(PART_BYTES, 2 * PART_BYTES), aes: key.subarray(2 * PART_BYTES) };
}

export class TicketKeyRing {
  private current: TicketKey;
  private previous: TicketKey;
  // Node copies the IV out before the callback's caller returns: one buffer serves every ticket.
  private readonly iv = Buffer.alloc(PART_BYTES);

  /** `current` and `previous` are 48-byte Node ticket keys. */
  constructor(current: Buffer, previous: Buffer) {
    this.current = splitKey(current);
    this.previous = splitKey(previous);
  }

  /** Installs the keys of a new window (and of the window before it, which may not be the old current one after a long pause). */
  set(current: Buffer, previous: Buffer): void {
    this.current = splitKey(current);
    this.previous = splitKey(previous);
  }

  /** The current window's key in Node's 48-byte form, for `setTicketKeys`. */
  currentKey(): Buffer {
    return Buffer.concat([this.current.name, this.current.hmac, this.current.aes]);
  }

  /** Node's ticket key callback: `name` is the ticket's key name when decrypting. */
  readonly answer = (name: Buffer, _iv: Buffer, encrypt: boolean): TicketKeyAnswer => {
    const { current, previous } = this;
    if (encrypt) return [1, current.hmac, current.aes, current.name, randomFillSync(this.iv)];
    if (name.equals(current.name)) return [1, current.hmac, current.aes];
    if (name.equals(previous.name)) return [2, previous.hmac, previous.aes];
    // Node wants keys even for "not ours"; OpenSSL then makes a full handshake.
    return [0, current.hmac, current.aes];
  };
}

/** A node:tls (or node:https) server, as far as its secure context's ticket key callback goes. */
interface ServerWithContext {
  readonly _sharedCreds?: { readonly context?: unknown };
}

interface NodeTicketKeyContext {
  enableTicketKeyCallback(): void;
  onticketkeycallback: (name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer;
}

function isTicketKeyContext(context: unknown): context is NodeTicketKeyContext {
  return typeof context === 'object' && context !== null && typeof (context as { enableTicketKeyCallback?: unknown }).enableTicketKeyCallback === 'function';
}

/**
 * Makes `server`'s current secure context take its ticket keys from `ring`. Call it again after
 * every `setSecureContext` (a new context starts with Node's single key). Returns false, changing
 * nothing, when this Node has no ticket key callback.
 */
export function installTicketKeyRing(server: object, ring: TicketKeyRing): boolean {
  const context = (server as ServerWithContext)._sharedCreds?.context;
  if (!isTicketKeyContext(context)) return false;
  context.onticketkeycallback = ring.answer;
  context.enableTicketKeyCallback();
  return true;
}
