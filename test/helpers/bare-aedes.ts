import type { ExecutionContext } from 'ava';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { nextEvent } from './wait.ts';

/*
 * A bare aedes (no TLS, no fleetgate hooks unless given) with clients over in-memory streams, and
 * an emitter that can hold a message on its way to the subscribers until the test lets it go:
 * for the ordering of aedes' own steps (PUBACK, queueing, routing, delivery).
 */

/** The part of aedes' emitter (mqemitter) the bare broker wraps. */
type Emitter = { emit(packet: { topic: string }, done: (error?: Error) => void): void };

/** A client of the bare broker, seen from its side of the connection. */
export interface BareClient {
  /** The broker's client object. */
  readonly client: Client;
  /** Every packet the broker wrote to it. */
  readonly packets: Packet[];
  readonly received: EventEmitter<{ packet: [Packet]; close: [] }>;
  send(packet: Parameters<typeof mqttPacket.generate>[0]): void;
  /** The next packet of a kind the broker writes to it. */
  next(cmd: Packet['cmd'], what: string): Promise<Packet>;
}

/** Options of {@link bareBroker}. */
export interface BareBrokerOptions {
  /** Which messages the emitter holds until released (default none). */
  readonly hold?: (topic: string) => boolean;
  /** What a released message's routing does: undefined delivers, an Error fails the publish. */
  readonly outcome?: () => Error | undefined;
  readonly aedes?: Partial<AedesOptions>;
  /** Called with each client as soon as aedes made it (before its CONNECT is handled). */
  readonly onClient?: (client: Client) => void;
}

export async function bareBroker(t: ExecutionContext, options: BareBrokerOptions = {}) {
  const aedes = await Aedes.createBroker({ ...options.aedes });
  t.teardown(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
  // aedes' own in-process emitter, wrapped once the broker has started (it announced itself).
  const mq = (aedes as unknown as { mq: Emitter }).mq;
  const held = new EventEmitter<{ emit: [topic: string, release: () => void] }>();
  const emitted: string[] = [];
  const emit = mq.emit.bind(mq);
  mq.emit = (packet, done) => {
    if (packet.topic.startsWith('$SYS')) return emit(packet, done);
    emitted.push(packet.topic);
    const release = (): void => {
      const error = options.outcome?.();
      if (error) done(error);
      else emit(packet, done);
    };
    if (options.hold?.(packet.topic)) held.emit('emit', packet.topic, release);
    else release();
  };
  const published: string[] = [];
  aedes.on('publish', (packet, client) => {
    if (client) published.push(packet.topic);
  });

  const connect = async (clientId: string, clean = true): Promise<BareClient> => {
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
    const next = (cmd: Packet['cmd'], what: string): Promise<Packet> => nextEvent<[Packet]>(received, 'packet', { what, accept: (packet: Packet) => packet.cmd === cmd }).then(([packet]) => packet);
    const client = aedes.handle(conn as never);
    options.onClient?.(client);
    const connack = next('connack', `the CONNACK of ${clientId}`);
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 0 });
    await connack;
    return { client, packets, received, send, next };
  };
  /** A message on its way to the subscribers, held: resolves with its release. */
  const nextHeld = (what: string): Promise<() => void> => nextEvent<[string, () => void]>(held, 'emit', { what }).then(([, release]) => release);
  return { aedes, emitted, published, connect, nextHeld };
}
