import test from 'ava';
import type { Client } from 'aedes';
import { SessionTable, type DeviceSession } from '../server/src/broker/sessions.ts';

/*
 * The session table's counts feed the connected gauges at every connect and disconnect; they are
 * kept as the table changes rather than counted, so they must follow takeovers and stale deletes.
 */

const client = (id: string): Client => ({ id }) as unknown as Client;
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
