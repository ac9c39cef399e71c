import { hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeSecretFileExclusive } from '../pki/keys.ts';
import { PkiError } from '../pki/errors.ts';

/**
 * TLS session tickets every process and node of one data directory can decrypt, without talking
 * to each other: the keys are derived from a secret in the data directory (`tls/ticket.secret`)
 * and the current time window.
 *
 * Node holds ONE ticket key per secure context (`server.setTicketKeys()`; measured: a second
 * SecureContext returned by SNICallback does not help, OpenSSL decrypts tickets with the
 * listener's initial context). So at a window boundary the key changes on every node at once and
 * tickets of the previous window are no longer accepted: a device reconnecting after the boundary
 * makes one full handshake and gets a ticket of the new window. docs/broker.md ("TLS session
 * resumption") says what that costs.
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
}

/**
 * Installs the current window's keys on the registered listeners and changes them at every
 * window boundary (a timer to the next boundary, not an interval: it does not drift).
 */
export class TicketKeyRotation {
  private readonly holders = new Map<TicketKeyHolder, ResumingListener>();
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
      ticketKeys: deriveTicketKeys(this.options.secret, listener, this.window),
    };
  }

  /** Keeps `holder`'s keys current from now on. */
  register(holder: TicketKeyHolder, listener: ResumingListener): void {
    this.holders.set(holder, listener);
    holder.setTicketKeys(deriveTicketKeys(this.options.secret, listener, this.window));
  }

  /** Stops rotating. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
      for (const [holder, listener] of this.holders) holder.setTicketKeys(deriveTicketKeys(this.options.secret, listener, window));
      this.options.onRotate?.(window);
    }
    this.schedule();
  }
}
