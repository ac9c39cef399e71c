/**
 * A bare Node https server with fleetgate's EST TLS settings and nothing behind them: the floor
 * for "Node TLS + HTTP" under the enrollment figure. Started by node-floor.ts as
 * `node --import tsx bench/node-floor-server.ts <data dir> <port>`; never run by hand.
 *
 * It asks for a client certificate exactly as fleetgate does (requested, chain verified by
 * OpenSSL against root, issuing and factory CA, refused in HTTP rather than in the handshake),
 * reads the request body and answers with a body the size of an EST certs-only response.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { MEDIA_TYPES } from '@fleetgate/device-sdk';
// The very TLS defaults the EST listener uses, so ciphers and curves cannot drift apart.
import { TLS_SERVER_DEFAULTS } from '../server/src/tls/defaults.ts';

const [dataDir, port] = process.argv.slice(2);
if (!dataDir || !port) throw new Error('usage: node-floor-server.ts <data dir> <port>');
const pem = (...path: string[]): string => readFileSync(join(dataDir, ...path), 'utf8');

/** About what simpleenroll returns: base64 of a certs-only PKCS#7 holding two P-256 certificates. */
const BODY = Buffer.alloc(1_700, 'A');

const server = createServer(
  {
    ...TLS_SERVER_DEFAULTS,
    key: pem('tls', 'server.key'),
    cert: pem('tls', 'server.crt'),
    ca: [pem('ca', 'root.crt'), pem('ca', 'issuing.crt'), pem('ca', 'factory.crt')],
    requestCert: true,
    rejectUnauthorized: false,
    noDelay: true,
  },
  (request, response) => {
    request.resume();
    request.on('end', () => {
      if (!(request.socket as TLSSocket).authorized) {
        response.writeHead(401, { 'Fleetgate-Error-Code': 'FLOOR_CLIENT_CERT_UNTRUSTED' }).end();
        return;
      }
      response.writeHead(200, { 'content-type': MEDIA_TYPES.certsOnly, 'content-length': BODY.length }).end(BODY);
    });
  },
);
server.listen({ host: '127.0.0.1', port: Number(port), backlog: 4096 });
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
