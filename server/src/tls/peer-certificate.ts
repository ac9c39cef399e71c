import type { TLSSocket } from 'node:tls';
import { Tag } from '../pki/der.ts';
import { rootSpan, spanAt } from '../pki/der-span.ts';

/** SSL_SESSION's `peer` field: [3] EXPLICIT Certificate OPTIONAL (OpenSSL ssl/ssl_asn1.c). */
const PEER_FIELD = 0xa3;
/** The SSL_SESSION encoding version OpenSSL has written since 0.9.x, up to 3.x. */
const SESSION_ASN1_VERSION = 1;

/** What a session's encoding says about the peer's certificate. */
export type SessionPeer = { readonly der: Buffer | undefined } | 'unknown-format';

/**
 * The client certificate inside OpenSSL's encoding of a TLS session (`i2d_SSL_SESSION`):
 * SEQUENCE { version INTEGER (1), sslVersion, cipher, sessionId, masterKey, [0], [1] time,
 * [2] timeout, [3] peer Certificate, ... }. The session is where OpenSSL keeps the peer's leaf
 * (`SSL_get_peer_certificate` reads it there), after a full and after a resumed handshake alike.
 * Returns 'unknown-format' for anything not of that shape, and the caller asks Node instead.
 */
export function sessionPeer(session: Buffer): SessionPeer {
  try {
    const outer = rootSpan(session, Tag.SEQUENCE, 'SSL_SESSION');
    const version = spanAt(session, outer.start, outer.end);
    if (version.tag !== Tag.INTEGER || version.end - version.start !== 1 || session[version.start] !== SESSION_ASN1_VERSION) return 'unknown-format';
    for (let at = version.end; at < outer.end; ) {
      const field = spanAt(session, at, outer.end);
      if (field.tag === PEER_FIELD) {
        const certificate = spanAt(session, field.start, field.end);
        if (certificate.tag !== Tag.SEQUENCE || certificate.end !== field.end) return 'unknown-format';
        // A copy: the session's bytes are wiped below.
        return { der: Buffer.from(session.subarray(certificate.offset, certificate.end)) };
      }
      at = field.end;
    }
    return { der: undefined };
  } catch {
    return 'unknown-format';
  }
}

/**
 * The DER of the certificate a TLS client presented, or undefined when it presented none. The
 * chain is not read: the caller decides from `socket.authorized` whether OpenSSL verified it.
 *
 * Read from the session's encoding rather than with `getPeerX509Certificate()`, which copies
 * (re-encodes and decodes) every certificate of the chain the client sent: measured on one
 * connection each (1,000 full handshakes, a device sending its leaf and issuing CA), 352 µs for
 * `getPeerX509Certificate()` alone against 27 µs for `getSession()`, and 28 µs for both when the
 * client sends its leaf alone. `getPeerCertificate()` (152 µs) renders the public key, which on
 * OpenSSL 3 leaves a decoded copy of the key cached in the certificate for as long as the
 * connection lasts (1.9 KiB of native memory per held connection). The session also carries the
 * resumption secret, so its bytes are zeroed once read.
 */
export function peerCertificateDer(socket: TLSSocket): Buffer | undefined {
  const session = socket.getSession();
  if (session) {
    const peer = sessionPeer(session);
    session.fill(0);
    if (peer !== 'unknown-format') return peer.der;
  }
  return socket.getPeerX509Certificate()?.raw;
}
