import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { TicketKeyRotation } from '../server/src/tls/ticket-keys.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * The ticket keys of a listener across window boundaries, on real node:tls servers with the
 * rotation's clock moved instead of waited for (an hour per window). Which process issued a ticket
 * does not matter: every one derives the same keys from the secret and the window, so "a server in
 * window W" is any process of the data directory at that time. With the whole fleet:
 * tls-resumption.test.ts and tls-resumption-nodes.test.ts.
 */

const WINDOW_SECONDS = 3600;
const startOf = (window: number): number => window * WINDOW_SECONDS * 1000;
const secret = randomBytes(32);
const ca = await manufacturer('ticket test');
const serverCredential = await ca.device('server');

interface TicketServer {
  readonly port: number;
  readonly rotated: Promise<unknown>;
}

/** A TLS server whose rotation's clock reads `clock()`; it writes one byte to every client. */
async function ticketServer(t: ExecutionContext, clock: () => number, keySecret: Buffer = secret): Promise<TicketServer> {
  let onRotate: (window: number) => void = () => undefined;
  const rotated = new Promise((resolve) => (onRotate = resolve));
  const rotation = new TicketKeyRotation({ secret: keySecret, windowSeconds: WINDOW_SECONDS, sessionTimeoutSeconds: 2 * WINDOW_SECONDS, now: clock, onRotate });
  const server = createServer({ key: serverCredential.keyPem, cert: serverCredential.certPem, ...rotation.resumptionOptions('mqtt') }, (socket) => socket.end('x'));
  rotation.register(server, 'mqtt');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    rotation.close();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, rotated };
}

/**
 * One TLS connection offering `session`: whether it resumed, and the last ticket the server sent.
 * The server's certificate (a device certificate, client auth only) is not checked: only the
 * tickets matter here.
 */
async function handshake(server: TicketServer, session?: Buffer): Promise<{ resumed: boolean; ticket: Buffer | undefined }> {
  const socket: TLSSocket = connect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false, ...(session ? { session } : {}) });
  try {
    let ticket: Buffer | undefined;
    socket.on('session', (data: Buffer) => (ticket = data));
    // The server ends the connection after its byte; its tickets came before.
    socket.resume();
    await withDeadline(once(socket, 'end'), { what: 'the server to end the connection' });
    return { resumed: socket.isSessionReused(), ticket };
  } finally {
    socket.destroy();
  }
}

test('a ticket resumes in its own window and the next one (renewed there), not two windows on; a process started after a boundary accepts the previous window too', async (t) => {
  const inWindow100 = await ticketServer(t, () => startOf(100) + 1_000);
  const issued = await handshake(inWindow100);
  t.false(issued.resumed);
  t.truthy(issued.ticket);
  const again = await handshake(inWindow100, issued.ticket);
  t.true(again.resumed, 'its own window');
  t.is(again.ticket, undefined, 'a ticket of the current window is not renewed');

  const inWindow101 = await ticketServer(t, () => startOf(101) + 1_000);
  const next = await handshake(inWindow101, issued.ticket);
  t.true(next.resumed, 'the next window, in a process that started in it');
  t.truthy(next.ticket, 'renewed with a ticket of window 101');

  const inWindow102 = await ticketServer(t, () => startOf(102) + 1_000);
  const stale = await handshake(inWindow102, issued.ticket);
  t.false(stale.resumed, 'two windows on: a full handshake');
  t.truthy(stale.ticket, 'which hands out a ticket of window 102');
  t.true((await handshake(inWindow102, next.ticket)).resumed, 'the renewed ticket resumes in the window after its own');
});

test('a live listener rotates at the boundary and keeps accepting the tickets it issued before it', async (t) => {
  // The rotation's clock 300 ms before a boundary, running at real speed.
  const started = Date.now();
  const server = await ticketServer(t, () => startOf(200) - 300 + (Date.now() - started));
  const issued = await handshake(server);
  t.truthy(issued.ticket);
  t.is(await withDeadline(server.rotated, { what: 'the rotation at the boundary' }), 200);
  const after = await handshake(server, issued.ticket);
  t.true(after.resumed, 'the ticket of the previous window resumes');
  t.truthy(after.ticket, 'and is renewed');
  t.true((await handshake(server, after.ticket)).resumed);
});

test('a ticket from keys of another secret is not ours: a full handshake, not an error', async (t) => {
  const ours = await ticketServer(t, () => startOf(300) + 1_000);
  const theirs = await ticketServer(t, () => startOf(300) + 1_000, randomBytes(32));
  const issued = await handshake(theirs);
  const offered = await handshake(ours, issued.ticket);
  t.false(offered.resumed);
  t.truthy(offered.ticket);
});
