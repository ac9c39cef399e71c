import test from 'ava';
import type { Aedes } from 'aedes';
import { publishBeforePuback } from '../server/src/broker/publish-before-puback.ts';
import { bareBroker } from './helpers/bare-aedes.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * A QoS 1 PUBACK means the message is published (routed, and queued for offline persistent
 * sessions): aedes 1.2 on its own sends the PUBACK first, and a cluster node killed, or a Redis
 * away, in between loses a message its publisher believes delivered. A bare aedes whose emitter
 * holds the publish until the test lets it go.
 */

async function broker(t: Parameters<typeof bareBroker>[0], outcome?: () => Error | undefined) {
  const ordering = publishBeforePuback((_client, _packet, callback) => callback(null));
  const bare = await bareBroker(t, { hold: (topic) => topic.startsWith('devices/'), outcome, aedes: { authorizePublish: ordering.authorizePublish } });
  ordering.install(bare.aedes as Aedes);
  return { ...bare, publisher: await bare.connect('publisher') };
}

test('a QoS 1 PUBACK goes out once the message is published, never before; the message is published once', async (t) => {
  const { publisher, nextHeld, emitted, published } = await broker(t);
  const publishing = nextHeld('the broker to publish the message');
  publisher.send({ cmd: 'publish', topic: 'devices/a/telemetry', payload: Buffer.from('21.5'), qos: 1, messageId: 7, retain: false, dup: false });
  const release = await publishing;
  // aedes 1.2 alone writes the PUBACK before it publishes: it would be here already.
  t.false(publisher.packets.some((packet) => packet.cmd === 'puback'), 'no PUBACK while the publish is in progress');
  const puback = publisher.next('puback', 'the PUBACK');
  release();
  t.like(await puback, { cmd: 'puback', messageId: 7 });
  t.deepEqual(emitted, ['devices/a/telemetry'], 'routed once');
  t.deepEqual(published, ['devices/a/telemetry'], 'one publish event');

  // QoS 0 is published as before (no PUBACK to hold).
  const qos0 = nextHeld('the QoS 0 publish');
  publisher.send({ cmd: 'publish', topic: 'devices/a/position', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
  (await qos0)();
  t.deepEqual(emitted, ['devices/a/telemetry', 'devices/a/position']);
});

test('a QoS 1 message that cannot be published gets no PUBACK: the connection closes and the client sends it again', async (t) => {
  const { publisher, nextHeld } = await broker(t, () => new Error('Redis is away'));
  const publishing = nextHeld('the broker to publish the message');
  const closed = withDeadline(new Promise<void>((resolve) => publisher.received.once('close', resolve)), { what: 'the connection to close' });
  publisher.send({ cmd: 'publish', topic: 'devices/a/telemetry', payload: Buffer.from('21.5'), qos: 1, messageId: 8, retain: false, dup: false });
  (await publishing)();
  await closed;
  t.false(publisher.packets.some((packet) => packet.cmd === 'puback'));
});
