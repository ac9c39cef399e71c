import test from 'ava';
import type { Aedes } from 'aedes';
import type { EventEmitter } from 'node:events';
import { announcementsSubscribable, skipClientAnnouncements } from '../server/src/broker/client-announcements.ts';
import { DEFAULT_CONFIG } from '../server/src/config/config.ts';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { bareBroker } from './helpers/bare-aedes.ts';
import { serviceCredential, startFleet, testConfig } from './helpers/fleet.ts';
import { nextEvent, waitFor } from './helpers/wait.ts';

/*
 * aedes' $SYS announcement of every client (docs/broker.md, "`$SYS` announcements"): off for a process
 * alone, on in a cluster (test/cluster.test.ts: a takeover across nodes) and for a configuration
 * whose subscribe rules name $SYS.
 */

/** Every client announcement aedes' emitter carries. */
async function announcements(aedes: Aedes): Promise<string[]> {
  const heard: string[] = [];
  const listen = (filter: string): Promise<void> =>
    new Promise((resolve) =>
      aedes.subscribe(
        filter,
        (packet, done) => {
          heard.push(`${packet.topic} ${packet.payload.toString()}`);
          done();
        },
        () => resolve(),
      ),
    );
  await Promise.all([listen('$SYS/+/new/clients'), listen('$SYS/+/disconnect/clients')]);
  return heard;
}

test('aedes announces every connect and disconnect on $SYS; skipClientAnnouncements stops only those, other messages flow', async (t) => {
  const plain = await bareBroker(t);
  const heardPlain = await announcements(plain.aedes);
  const before = await plain.connect('device-a');
  before.client.close();
  await waitFor(() => heardPlain.length === 2, { what: 'both announcements of an unchanged aedes' });
  t.deepEqual(heardPlain, [`$SYS/${plain.aedes.id}/new/clients device-a`, `$SYS/${plain.aedes.id}/disconnect/clients device-a`]);

  const skipping = await bareBroker(t);
  t.true(skipClientAnnouncements(skipping.aedes), 'aedes 1.2 has the publish it wraps');
  const heard = await announcements(skipping.aedes);
  const subscriber = await skipping.connect('subscriber');
  subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fleet/#', qos: 0 }] });
  await subscriber.next('suback', 'the SUBACK');
  const publisher = await skipping.connect('publisher');
  const delivered = subscriber.next('publish', 'the message');
  publisher.send({ cmd: 'publish', topic: 'fleet/news', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false });
  t.is(((await delivered) as { topic: string }).topic, 'fleet/news');
  // Other $SYS messages of aedes (its heartbeat) still go through the same publish.
  const heartbeat = nextEvent<[{ topic: string }]>(skipping.aedes as unknown as EventEmitter, 'publish', { what: 'a heartbeat' });
  skipping.aedes.publish({ cmd: 'publish', topic: `$SYS/${skipping.aedes.id}/heartbeat`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => undefined);
  t.is((await heartbeat)[0].topic, `$SYS/${skipping.aedes.id}/heartbeat`);
  publisher.client.close();
  subscriber.client.close();
  await waitFor(() => skipping.aedes.connectedClients === 0, { what: 'both clients gone' });
  t.deepEqual(heard, [], 'no announcement');
});

test('announcements are subscribable only through a subscribe rule naming $SYS', (t) => {
  const broker = DEFAULT_CONFIG.broker;
  t.false(announcementsSubscribable(broker), 'the defaults: devices/{id}/# and devices/#');
  t.false(announcementsSubscribable({ ...broker, services: { ops: { publish: [], subscribe: ['#', '+/+/new/clients'] } } }), 'wildcards never reach $ topics');
  t.true(announcementsSubscribable({ ...broker, services: { ops: { publish: [], subscribe: ['$SYS/#'] } } }));
  t.true(announcementsSubscribable({ ...broker, topics: { ...broker.topics, models: { gateway: { subscribe: ['$SYS/+/new/clients'] } } } }));
});

test('a process alone whose service may subscribe to $SYS still announces every device that connects', async (t) => {
  const config = testConfig();
  const fleet = await startFleet(t, { config: { ...config, broker: { ...config.broker, services: { backend: { publish: [], subscribe: ['$SYS/#'] } } } } });
  const backend = await connectMqtt(t, fleet, await serviceCredential(t, fleet));
  t.deepEqual((await backend.subscribeAsync('$SYS/+/new/clients')).map((grant) => grant.qos), [0]);
  const [device] = await enrolledDevices(t, fleet);
  const announced = nextEvent<[string, Buffer]>(backend as unknown as EventEmitter, 'message', { what: 'the announcement of the device' });
  await connectMqtt(t, fleet, device!.operational);
  const [topic, payload] = await announced;
  t.is(topic, `$SYS/${fleet.server.nodeId}/new/clients`);
  t.is(payload.toString(), device!.id);
});
