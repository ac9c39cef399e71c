import test, { type ExecutionContext } from 'ava';
import { Aedes } from 'aedes';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { publishBeforePuback } from '../server/src/broker/publish-before-puback.ts';
import { nextEvent } from './helpers/wait.ts';

/*
 * A QoS 1 PUBACK means the message is published (routed, and queued for offline persistent
 * sessions): aedes 1.2 on its own sends the PUBACK first, and a cluster node killed, or a Redis
 * away, in between loses a message its publisher believes delivered. A bare aedes over an
 * in-memory stream, with an emitter that holds the publish until the test lets it go.
 */

const require = createRequire(import.meta.url);
type Emitter = { emit(packet: { topic: string }, done: (error?: Error) => void): void };
const mqemitter = require('mqemitter') as () => Emitter;

/** A broker with publishBeforePuback, one connected client, and the publishes its emitter holds. */
async function broker(t: ExecutionContext, outcome: () => Error | undefined = () => undefined) {
  const mq = mqemitter();
  const held = new EventEmitter<{ emit: [release: () => void] }>();
  const emitted: string[] = [];
  const emit = mq.emit.bind(mq);
  mq.emit = (packet, done) => {
    if (packet.topic.startsWith('$SYS')) return emit(packet, done);
    emitted.push(packet.topic);
    held.emit('emit', () => {
      const error = outcome();
      if (error) done(error);
      else emit(packet, done);
    });
  };
  const ordering = publishBeforePuback((_client, _packet, callback) => callback(null));
  const aedes = await Aedes.createBroker({ mq: mq as never, authorizePublish: ordering.authorizePublish });
  ordering.install(aedes);
  t.teardown(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
  const published: string[] = [];
  aedes.on('publish', (packet, client) => {
    if (client) published.push(packet.topic);
  });

  // The client's side: what it sends is pushed into the connection, what the broker writes is parsed.
  const received = new EventEmitter<{ packet: [Packet]; close: [] }>();
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (packet) => {
    packets.push(packet);
    received.emit('packet', packet);
  });
  const conn = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      parser.parse(chunk);
      callback();
    },
  });
  conn.on('close', () => received.emit('close'));
  const send = (packet: Parameters<typeof mqttPacket.generate>[0]): void => {
    conn.push(mqttPacket.generate(packet));
  };
  aedes.handle(conn as never);
  const connack = nextEvent(received, 'packet', { what: 'CONNACK', accept: (packet: Packet) => packet.cmd === 'connack' });
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'publisher', clean: true, keepalive: 0 });
  await connack;
  return { held, emitted, published, received, packets, send };
}

test('a QoS 1 PUBACK goes out once the message is published, never before; the message is published once', async (t) => {
  const { held, emitted, published, received, packets, send } = await broker(t);
  const publishing = nextEvent<[() => void]>(held, 'emit', { what: 'the broker to publish the message' });
  send({ cmd: 'publish', topic: 'devices/a/telemetry', payload: Buffer.from('21.5'), qos: 1, messageId: 7, retain: false, dup: false });
  const [release] = await publishing;
  // aedes 1.2 alone writes the PUBACK before it publishes: it would be here already.
  t.false(packets.some((packet) => packet.cmd === 'puback'), 'no PUBACK while the publish is in progress');
  const puback = nextEvent<[Packet]>(received, 'packet', { what: 'the PUBACK', accept: (packet: Packet) => packet.cmd === 'puback' });
  release();
  t.like((await puback)[0], { cmd: 'puback', messageId: 7 });
  t.deepEqual(emitted, ['devices/a/telemetry'], 'routed once');
  t.deepEqual(published, ['devices/a/telemetry'], 'one publish event');

  // QoS 0 is published as before (no PUBACK to hold).
  const qos0 = nextEvent<[() => void]>(held, 'emit', { what: 'the QoS 0 publish' });
  send({ cmd: 'publish', topic: 'devices/a/position', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
  (await qos0)[0]();
  t.deepEqual(emitted, ['devices/a/telemetry', 'devices/a/position']);
});

test('a QoS 1 message that cannot be published gets no PUBACK: the connection closes and the client sends it again', async (t) => {
  const { held, packets, received, send } = await broker(t, () => new Error('Redis is away'));
  const publishing = nextEvent<[() => void]>(held, 'emit', { what: 'the broker to publish the message' });
  const closed = nextEvent(received, 'close', { what: 'the connection to close' });
  send({ cmd: 'publish', topic: 'devices/a/telemetry', payload: Buffer.from('21.5'), qos: 1, messageId: 8, retain: false, dup: false });
  (await publishing)[0]();
  await closed;
  t.false(packets.some((packet) => packet.cmd === 'puback'));
});
