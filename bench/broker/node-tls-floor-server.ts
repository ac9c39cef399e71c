/**
 * A bare Node TLS server with the broker listener's TLS settings and the least MQTT that the
 * benchmark's clients need: the floor under fleetgate's broker figures, "Node TLS + a socket per
 * client" with no broker behind it. Started by node-tls-floor.ts as
 * `node --import tsx bench/broker/node-tls-floor-server.ts <data dir> <port>`; never run by hand.
 *
 * It asks for a client certificate exactly as fleetgate's broker does (requested, chain verified
 * by OpenSSL against the root and the issuing CA, refused in MQTT rather than in the handshake)
 * and answers CONNECT with CONNACK (5 when the chain did not verify), a QoS 1 PUBLISH with its
 * PUBACK, PINGREQ with PINGRESP, and closes on DISCONNECT. No identity, no ACL, no sessions.
 */
import { readFileSync } from 'node:fs';
import { createServer, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
// The very TLS defaults the broker listener uses, so ciphers and curves cannot drift apart.
import { TLS_SERVER_DEFAULTS } from '../../server/src/tls/defaults.ts';

const [dataDir, port] = process.argv.slice(2);
if (!dataDir || !port) throw new Error('usage: node-tls-floor-server.ts <data dir> <port>');
const pem = (...path: string[]): string => readFileSync(join(dataDir, ...path), 'utf8');

const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const CONNACK_NOT_AUTHORIZED = Buffer.from([0x20, 0x02, 0x00, 0x05]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

/** Answers the packets of one connection; `pending` holds a packet split across reads. */
function serve(socket: TLSSocket): void {
  let pending: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    const buffer = pending ? Buffer.concat([pending, chunk]) : chunk;
    let offset = 0;
    const replies: Buffer[] = [];
    while (offset + 2 <= buffer.length) {
      let length = 0;
      let multiplier = 1;
      let position = offset + 1;
      let byte = 0x80;
      while (byte & 0x80 && position < buffer.length && multiplier <= 128 ** 3) {
        byte = buffer[position++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      }
      if (byte & 0x80 || position + length > buffer.length) break;
      const first = buffer[offset] as number;
      const type = first >> 4;
      if (type === 1) replies.push(socket.authorized ? CONNACK_OK : CONNACK_NOT_AUTHORIZED);
      else if (type === 3 && ((first >> 1) & 3) === 1) {
        const idAt = position + 2 + buffer.readUInt16BE(position);
        replies.push(Buffer.from([0x40, 0x02, buffer[idAt] as number, buffer[idAt + 1] as number]));
      } else if (type === 12) replies.push(PINGRESP);
      else if (type === 14) {
        socket.end();
        return;
      }
      offset = position + length;
    }
    pending = offset < buffer.length ? Buffer.from(buffer.subarray(offset)) : undefined;
    if (replies.length === 1) socket.write(replies[0] as Buffer);
    else if (replies.length > 1) socket.write(Buffer.concat(replies));
  });
  socket.on('error', () => socket.destroy());
}

const server = createServer(
  {
    ...TLS_SERVER_DEFAULTS,
    key: pem('tls', 'server.key'),
    cert: pem('tls', 'server.crt'),
    ca: [pem('ca', 'root.crt'), pem('ca', 'issuing.crt')],
    requestCert: true,
    rejectUnauthorized: false,
    noDelay: true,
  },
  serve,
);
server.listen({ host: '127.0.0.1', port: Number(port), backlog: 4096 });
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  // Held connections would keep close() waiting.
  setTimeout(() => process.exit(0), 2_000).unref();
});
