/**
 * A TCP proxy that adds a round trip, for `npm run bench:shedding -- --rtt MS`: every chunk in
 * either direction is forwarded MS/2 later, and so is an end or a reset, so a TLS handshake
 * through it takes the round trips it would take over a long link (loopback has none). Run as its
 * own process (pinned beside the load generator) so that its work does not slow the load
 * generator's event loop. Connections to the broker leave from several loopback addresses, so the
 * broker's per-address bound (`listeners.maxPendingPerAddress`) sees many peers, as it would.
 *
 * Usage: latency-proxy.ts <listen-port> <target-host> <target-port> <one-way-ms> <sources>
 * Prints "ready" on stdout once it listens.
 */
import { createServer, connect, type Socket } from 'node:net';

const [listenPort = '', host = '', targetPort = '', oneWay = '', sourceCount = ''] = process.argv.slice(2);
const delayMs = Number(oneWay);
const sources = Number(sourceCount);
if (!/^\d+$/.test(listenPort) || !/^\d+$/.test(targetPort) || !(delayMs >= 0) || !(sources >= 1)) {
  console.error('usage: latency-proxy.ts <listen-port> <target-host> <target-port> <one-way-ms> <sources>');
  process.exit(2);
}

/**
 * Forwards `from` to the socket `to()` returns when each chunk is due, `delayMs` later: data in
 * order (the same delay, and timers due together fire in the order they were set), then its end
 * or reset.
 */
function pipeLater(from: Socket, to: () => Socket): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => {
      const target = to();
      if (!target.destroyed) target.write(chunk);
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to().end(), delayMs));
  from.on('error', () => setTimeout(() => to().resetAndDestroy(), delayMs));
  from.on('close', (hadError) => {
    if (!hadError) setTimeout(() => to().destroy(), delayMs + 1);
  });
}

let next = 0;
const server = createServer({ noDelay: true }, (client) => {
  // The broker accepts half a round trip after the client connected, as on a real link (its
  // ClientHello follows at once), from the next of the source addresses. The timer is set before
  // any of the client's data arrives, so it fires before that data is due.
  const localAddress = `127.0.0.${1 + (next++ % sources)}`;
  let upstream: Socket | undefined;
  const broker = (): Socket => {
    upstream ??= connect({ host, port: Number(targetPort), localAddress, noDelay: true });
    return upstream;
  };
  setTimeout(() => pipeLater(broker(), () => client), delayMs);
  pipeLater(client, broker);
});
server.listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
