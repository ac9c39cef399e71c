import test from 'ava';
import type { Client, ConnectPacket } from 'aedes';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { forgetConnectPacket, slimParser } from '../server/src/broker/parser-memory.ts';

/*
 * parser-memory.ts swaps parts of mqtt-packet's parser for lighter ones: the packets it reads
 * must stay the same, whatever the reads' boundaries.
 */

const stream = Buffer.concat([
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'device-1', clean: false, keepalive: 60, username: 'u', password: Buffer.from('p'), will: { topic: 'devices/device-1/status', payload: Buffer.from('gone'), qos: 1, retain: true } }),
  mqttPacket.generate({ cmd: 'publish', topic: 'devices/device-1/telemetry', payload: Buffer.alloc(300, 7), qos: 1, messageId: 42, retain: false, dup: false }),
  mqttPacket.generate({ cmd: 'subscribe', messageId: 43, subscriptions: [{ topic: 'devices/device-1/commands/#', qos: 1 }] }),
  mqttPacket.generate({ cmd: 'pingreq' }),
  mqttPacket.generate({ cmd: 'publish', topic: 'devices/device-1/t', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false }),
  mqttPacket.generate({ cmd: 'disconnect' }),
]);

/** What a parser emits for `stream` fed in pieces of `size` bytes; `slim` applies parser-memory.ts as the broker does. */
function parseInPieces(size: number, slim: boolean): Packet[] {
  const parser = mqttPacket.parser();
  // aedes keeps its parser on the client; that is all these functions read.
  const client = { _parser: parser } as unknown as Client;
  if (slim) slimParser(client);
  const packets: Packet[] = [];
  parser.on('packet', (packet: Packet) => {
    if (slim && packet.cmd === 'connect') forgetConnectPacket(client, packet as ConnectPacket);
    packets.push(packet);
  });
  parser.on('error', (error: Error) => {
    throw error;
  });
  for (let at = 0; at < stream.length; at += size) parser.parse(stream.subarray(at, at + size));
  return packets;
}

test('a slimmed parser reads the same packets as mqtt-packet, whatever the reads are split into', (t) => {
  const expected = parseInPieces(stream.length, false);
  t.is(expected.length, 6);
  for (const size of [1, 2, 3, 5, 7, 64, 333, stream.length]) t.deepEqual(parseInPieces(size, true), expected, `${size}-byte reads`);
});

test('after CONNECT the parser keeps a shared settings object instead of the CONNECT packet', (t) => {
  const settings = (size: number) => {
    const parser = mqttPacket.parser() as unknown as { settings: object; parse(buffer: Buffer): number; on(event: 'packet', listener: (packet: ConnectPacket) => void): void };
    const client = { _parser: parser } as unknown as Client;
    slimParser(client);
    parser.on('packet', (packet) => forgetConnectPacket(client, packet));
    parser.parse(stream.subarray(0, size));
    return parser.settings;
  };
  const first = settings(stream.length);
  t.deepEqual(first, { protocolVersion: 4 });
  t.is(settings(stream.length), first, 'one object for every client of a protocol version');
});
