/**
 * MQTT 3.1.1 §3.1.4: a client may send packets right after its CONNECT, without waiting for the
 * CONNACK. aedes 1.2 queues such packets only when they come in the same socket read as the
 * CONNECT; one in a later read reached the authorize hooks before the session existed and was
 * refused as unauthenticated (the connection closed with no CONNACK, about 3 times in 30).
 */
import test from 'ava';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { enrolledDevices } from './helpers/device.ts';
import { startFleet, type Fleet } from './helpers/fleet.ts';
import { waitFor } from './helpers/wait.ts';

interface Seen {
  readonly cmd: string;
  readonly granted?: readonly number[];
  readonly topic?: string;
}

/** Connects raw, then SUBSCRIBE and PUBLISH in a second write right behind the CONNECT; returns what came back. */
async function pipelined(fleet: Fleet, device: { id: string; operational: { certPem: string; keyPem: string } }, round: number): Promise<Seen[]> {
  const socket = tlsConnect({ host: '127.0.0.1', port: fleet.server.mqttPort, ca: fleet.rootPem, cert: device.operational.certPem, key: device.operational.keyPem, servername: 'localhost' });
  try {
    await once(socket, 'secureConnect');
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const seen: Seen[] = [];
    parser.on('packet', (packet: mqttPacket.Packet) => {
      seen.push({ cmd: packet.cmd, granted: packet.cmd === 'suback' ? (packet.granted as number[]) : undefined, topic: packet.cmd === 'publish' ? packet.topic : undefined });
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    const topic = `devices/${device.id}/pipelined/${round}`;
    // Each packet in its own write (its own TLS record), right behind each other, as a client
    // that does not wait for the CONNACK sends them: the broker reads them in one or more reads,
    // depending on timing, and before this was fixed a packet of a later read was refused.
    socket.write(mqttPacket.generate({ cmd: 'connect', clientId: device.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
    socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }));
    for (let id = 2; id < 7; id++) socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: id, retain: false, dup: false }));
    await waitFor(
      () => {
        if (socket.destroyed) throw new Error(`round ${round}: the broker closed the connection after ${seen.map((packet) => packet.cmd).join(', ') || 'nothing'}`);
        return seen.filter((packet) => packet.cmd === 'puback').length === 5 && seen.filter((packet) => packet.cmd === 'publish').length === 5;
      },
      { what: () => `round ${round}: five PUBACKs and the five messages back (so far: ${seen.map((packet) => packet.cmd).join(', ')})`, timeoutMs: 20_000 },
    );
    return seen;
  } finally {
    socket.destroy();
  }
}

test('SUBSCRIBE and PUBLISH sent right behind the CONNECT, before the CONNACK, are handled after authentication, not refused', async (t) => {
  const fleet = await startFleet(t);
  // Twenty devices at once, five rounds: connections interleave, so packets land in every phase
  // of the broker's CONNECT handling.
  const devices = await enrolledDevices(t, fleet, 'thermostat', 20);
  for (let round = 0; round < 5; round++) {
    const outcomes = await Promise.all(devices.map((device) => pipelined(fleet, device, round)));
    outcomes.forEach((seen, index) => {
      const label = `round ${round}, device ${index}`;
      t.is(seen[0]?.cmd, 'connack', `${label}: CONNACK first`);
      t.deepEqual(seen.find((packet) => packet.cmd === 'suback')?.granted, [1], `${label}: the subscription is granted`);
    });
  }
});
