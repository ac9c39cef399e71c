import test from 'ava';
import type { Client } from 'aedes';
import { EventEmitter } from 'node:events';
import { SessionTable, type DeviceSession } from '../server/src/broker/sessions.ts';

/*
 * The session table's counts feed the connected gauges at every connect and disconnect; they are
 * kept as the table changes rather than counted, so they must follow takeovers and stale deletes.
 */

/** An aedes client as the table sees it: an id and a connection that can close. */
const client = (id: string): Client => ({ id, conn: new EventEmitter() }) as unknown as Client;
const closeConnection = (of: Client): void => void (of.conn as unknown as EventEmitter).emit('close');
const session = (key: string): DeviceSession => ({ key }) as unknown as DeviceSession;

test('counts follow connects, takeovers (one session per key) and disconnects, for devices and services', (t) => {
  const table = new SessionTable();
  const device = client('d1');
  const service = client('backend:a');
  table.set(device, session('d1'));
  table.set(service, session('service:backend:a'));
  table.set(client('backend:b'), session('service:backend:b'));
  t.deepEqual(table.counts(), { devices: 1, services: 2 });

  // A takeover: the same keys connect again before the old clients are gone.
  const newer = client('d1');
  const newerService = client('backend:a');
  table.set(newer, session('d1'));
  table.set(newerService, session('service:backend:a'));
  t.deepEqual(table.counts(), { devices: 1, services: 2 }, 'one session per key');

  // The old clients' disconnects do not remove the newer sessions.
  table.delete(device);
  table.delete(service);
  t.deepEqual(table.counts(), { devices: 1, services: 2 });
  t.is(table.clientOf('d1'), newer);

  table.delete(newer);
  table.delete(newerService);
  t.deepEqual(table.counts(), { devices: 0, services: 1 });
  // Deleting twice changes nothing.
  table.delete(newerService);
  t.deepEqual(table.counts(), { devices: 0, services: 1 });
  t.is(table.size, 1);
});

test('a connection that closes after authentication but before aedes registers it leaves the table; once registered, only clientDisconnect removes it', (t) => {
  const table = new SessionTable();
  const early = client('d1');
  table.set(early, session('d1'));
  t.deepEqual(table.counts(), { devices: 1, services: 0 });
  closeConnection(early);
  t.deepEqual(table.counts(), { devices: 0, services: 0 }, 'aedes sends no clientDisconnect for it: the table forgets it by itself');
  t.is(table.get(early), undefined);
  t.is(table.clientOf('d1'), undefined);

  const registered = client('d1');
  table.set(registered, session('d1'));
  table.registered(registered);
  closeConnection(registered);
  t.is(table.clientOf('d1'), registered, 'a registered client waits for clientDisconnect (presence and history come with it)');
  t.is((registered.conn as unknown as EventEmitter).listenerCount('close'), 0, 'and holds no close listener of the table');
});

test('registration leaves the connection\'s other close listeners as they were, in an array of their own length', (t) => {
  const table = new SessionTable();
  const registered = client('d1');
  const conn = registered.conn as unknown as EventEmitter;
  // Node's, the listener guard's and socket-end's close listeners of a held socket.
  const others = [(): void => undefined, (): void => undefined, (): void => undefined];
  for (const listener of others) conn.on('close', listener);
  const closeArray = (): unknown => (conn as unknown as { _events: Record<string, unknown> })._events.close;
  table.set(registered, session('d1'));
  // Pushing a fourth listener grew the array's storage to room for 19; removing it gives none back.
  const grown = closeArray();
  table.registered(registered);
  t.deepEqual(conn.listeners('close'), others);
  t.not(closeArray(), grown, 'a copy of its length replaces the grown array (bench:memory: 168 bytes per held connection)');
});

test('a takeover whose connection closes before registration gives the key back to the session it was replacing', (t) => {
  const table = new SessionTable();
  const live = client('backend:a');
  table.set(live, session('service:backend:a'));
  table.registered(live);
  const taker = client('backend:a');
  table.closing(live, 'takeover');
  table.set(taker, session('service:backend:a'));
  t.is(table.clientOf('service:backend:a'), taker);
  closeConnection(taker);
  t.is(table.clientOf('service:backend:a'), live, 'revocation finds the live session again');
  t.deepEqual(table.counts(), { devices: 0, services: 1 });
  t.is(table.closedFor(live), undefined, 'it was not taken over after all');
});
