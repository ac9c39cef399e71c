import { hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeSecretFileExclusive } from '../pki/keys.ts';
import { PkiError } from '../pki/errors.ts';
import { installTicketKeyRing, TicketKeyRing } from './ticket-key-ring.ts';

/**
 * TLS session tickets every process and node of one data directory can decrypt, without talking
 * to each other: the keys are derived from a secret in the data directory (`tls/ticket.secret`)
 * and the current time window. Each listener accepts the current window's key and the previous
 * one's (tls/ticket-key-ring.ts), so at a window boundary every node changes its key at once and
 * a ticket issued just before it still resumes, once, and is replaced by one of the new window.
 */

/** Bytes of the secret: an HKDF input key of 256 bits. */
const SECRET_BYTES = 32;
/** Node's ticket key: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES key. */
const TICKET_KEY_BYTES = 48;
/** Domain separation of the derivation (RFC 5869 §3.1: a salt is optional but recommended). */
const HKDF_SALT = Buffer.from('fleetgate tls session ticket keys v1', 'utf8');

/** The listeners whose tickets fleetgate keys; each its own keys, so a ticket of one is never a session of the other. */
export type ResumingListener = 'mqtt' | 'est';

/** Resumption settings of a listener's secure context: pass them to createServer and to every setSecureContext. */
export interface ResumptionOptions {
  /** The same on every process and node: a session is only resumed where its context matches (Node's default hashes argv). */
  readonly sessionIdContext: string;
  /** Ticket lifetime, seconds. */
  readonly sessionTimeout: number;
  readonly ticketKeys: Buffer;
}

/** Reads the ticket secret, creating it (0600, written atomically, never replacing one) when the data directory has none. */
export async function ensureTicketSecret(path: string): Promise<{ secret: Buffer; created: boolean }> {
  const existing = await readTicketSecret(path);
  if (existing) return { secret: existing, created: false };
  try {
    await writeSecretFileExclusive(path, `${randomBytes(SECRET_BYTES).toString('hex')}\n`);
    return { secret: (await readTicketSecret(path)) ?? Buffer.alloc(0), created: true };
  } catch (error) {
    // Another worker or `init` made it meanwhile: everyone uses the one that won.
    if (error instanceof PkiError && error.code === 'PKI_KEY_EXISTS') {
      const winner = await readTicketSecret(path);
      if (winner) return { secret: winner, created: false };
    }
    throw error;
  }
}

async function readTicketSecret(path: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const hex = text.trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new PkiError('PKI_KEY_FILE', `${path} does not hold a ticket secret (64 hex digits); delete it and start again to make a new one`);
  return Buffer.from(hex, 'hex');
}

/** The window a time falls in: windows are aligned to the Unix epoch, so every node counts the same ones. */
export function ticketWindowAt(nowMs: number, windowSeconds: number): number {
  return Math.floor(nowMs / (windowSeconds * 1000));
}

/** The 48-byte Node ticket key of one listener in one window (HKDF-SHA256, RFC 5869). */
export function deriveTicketKeys(secret: Buffer, listener: ResumingListener, window: number): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, `${listener} window ${window}`, TICKET_KEY_BYTES));
}

/** What rotation changes: a TLS server (node:tls or node:https). */
export interface TicketKeyHolder {
  setTicketKeys(keys: Buffer): void;
}

export interface TicketKeyRotationOptions {
  readonly secret: Buffer;
  readonly windowSeconds: number;
  readonly sessionTimeoutSeconds: number;
  readonly now?: () => number;
  /** Called after each rotation (logs). */
  readonly onRotate?: (window: number) => void;
  /** Called when a listener can hold only one key (this Node has no ticket key callback): tickets then end at each boundary. */
  readonly onSingleWindow?: (listener: ResumingListener) => void;
}

interface RegisteredHolder {
  readonly listener: ResumingListener;
  readonly ring: TicketKeyRing;
}

/**
 * Installs the current and previous windows' keys on the registered listeners and changes them at
 * every window boundary (a timer to the next boundary, not an interval: it does not drift).
 */
export class TicketKeyRotation {
  private readonly holders = new Map<TicketKeyHolder, RegisteredHolder>();
  private window: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: TicketKeyRotationOptions) {
    this.now = options.now ?? Date.now;
    this.window = ticketWindowAt(this.now(), options.windowSeconds);
    this.schedule();
  }

  /** The options a listener's secure context needs now (its ticket keys are this window's). */
  resumptionOptions(listener: ResumingListener): ResumptionOptions {
    return {
      sessionIdContext: `fleetgate-${listener}`,
      sessionTimeout: this.options.sessionTimeoutSeconds,
      ticketKeys: this.keyOf(listener, this.window),
    };
  }

  /**
   * Keeps `holder`'s keys current from now on. Call it again after each `setSecureContext` of
   * `holder`: a new secure context holds only Node's single key until then.
   */
  register(holder: TicketKeyHolder, listener: ResumingListener): void {
    let registered = this.holders.get(holder);
    const first = !registered;
    if (!registered) {
      // The previous window's key too: a process started just after a boundary (a restart storm) still resumes the tickets it issued before.
      registered = { listener, ring: new TicketKeyRing(this.keyOf(listener, this.window), this.keyOf(listener, this.window - 1)) };
      this.holders.set(holder, registered);
    }
    holder.setTicketKeys(registered.ring.currentKey());
    if (!installTicketKeyRing(holder, registered.ring) && first) this.options.onSingleWindow?.(listener);
  }

  /** Stops rotating. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private keyOf(listener: ResumingListener, window: number): Buffer {
    return deriveTicketKeys(this.options.secret, listener, window);
  }

  private schedule(): void {
    const windowMs = this.options.windowSeconds * 1000;
    // A few milliseconds past the boundary: a timer may fire early by a millisecond.
    const delay = (this.window + 1) * windowMs - this.now() + 5;
    this.timer = setTimeout(() => this.rotate(), Math.max(1, delay));
    this.timer.unref();
  }

  private rotate(): void {
    const window = ticketWindowAt(this.now(), this.options.windowSeconds);
    if (window !== this.window) {
      this.window = window;
      for (const [holder, { listener, ring }] of this.holders) {
        ring.set(this.keyOf(listener, window), this.keyOf(listener, window - 1));
        // Node's single key too, for a context without the callback.
        holder.setTicketKeys(ring.currentKey());
      }
      this.options.onRotate?.(window);
    }
    this.schedule();
  }
}
