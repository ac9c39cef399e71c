import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';

/**
 * Node's TLS client checks the server's name at the end of every full handshake with
 * `checkServerIdentity(host, socket.getPeerCertificate(true))`. The default check reads only the
 * leaf's `subject` and `subjectaltname`, but `getPeerCertificate(true)` converts every certificate
 * of the chain to an object and looks the last one's issuer up in the trust store: 887 µs per call
 * against 46 µs for the leaf alone (`getPeerCertificate(false)`), measured on this project's
 * three-certificate chain (Node 20.20, OpenSSL 3.0). That is about a third of a device's CPU for a
 * full mutual-TLS handshake, twice per enrollment. OpenSSL verifies the chain during the handshake
 * either way; only the object handed to the name check is smaller.
 *
 * So, for the handshake only, the socket answers `getPeerCertificate(true)` with the leaf. Call it
 * right after creating the socket, and only when the name check is Node's default: a custom
 * `checkServerIdentity` may want the chain. After the handshake the socket is as Node made it.
 */
export function checkServerNameOnLeaf(socket: TLSSocket): void {
  const nodes = socket.getPeerCertificate;
  const leafOnly = function (this: TLSSocket): PeerCertificate | DetailedPeerCertificate {
    return nodes.call(this, false);
  };
  socket.getPeerCertificate = leafOnly as TLSSocket['getPeerCertificate'];
  const restore = (): void => {
    if (socket.getPeerCertificate === leafOnly) delete (socket as Partial<Pick<TLSSocket, 'getPeerCertificate'>>).getPeerCertificate;
  };
  // Node checks the name just before 'secureConnect'; a failed handshake ends in 'close'.
  socket.once('secureConnect', restore);
  socket.once('close', restore);
}
