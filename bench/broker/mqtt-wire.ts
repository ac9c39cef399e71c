import { generate, parser, type Packet, type Parser } from 'mqtt-packet';

/**
 * MQTT 3.1.1 bytes for the load generator. CONNECT, SUBSCRIBE and everything the brokers send
 * besides PUBACK and PUBLISH go through mqtt-packet (`generate`, `parser`). The two packets of the
 * hot path are framed by hand: mqtt-packet costs ~1.7 us to generate a PUBLISH and ~2.2 us to parse
 * a PUBACK here, which at 100k messages/s would be a third of the load generator's core.
 */

/** DISCONNECT (MQTT 3.1.1 §3.14): fixed header only. */
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A CONNECT with a clean session, MQTT 3.1.1, no will, no username (identity is the certificate). */
export function connectPacket(clientId: string, keepaliveSeconds: number): Buffer {
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: keepaliveSeconds });
}

/** A SUBSCRIBE for one filter. */
export function subscribePacket(messageId: number, filter: string, qos: 0 | 1): Buffer {
  return generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] });
}

/**
 * One PUBLISH, encoded once and copied for every message of a connection: all its messages share
 * topic and payload, only the packet identifier changes (QoS 1), at `idOffset`.
 */
export interface PublishTemplate {
  readonly bytes: Buffer;
  /** Where the 2-byte packet identifier sits; -1 for QoS 0, which has none. */
  readonly idOffset: number;
}

/** Encodes the MQTT variable-length "remaining length" (MQTT 3.1.1 §2.2.3). */
function remainingLength(length: number): number[] {
  const bytes: number[] = [];
  let rest = length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return bytes;
}

/** PUBLISH (MQTT 3.1.1 §3.3) with DUP and RETAIN clear. */
export function publishTemplate(topic: string, payload: Buffer, qos: 0 | 1): PublishTemplate {
  const topicBytes = Buffer.from(topic, 'utf8');
  const variable = 2 + topicBytes.length + (qos === 1 ? 2 : 0);
  const header = [0x30 | (qos << 1), ...remainingLength(variable + payload.length)];
  const bytes = Buffer.alloc(header.length + variable + payload.length);
  Buffer.from(header).copy(bytes, 0);
  let offset = header.length;
  offset = bytes.writeUInt16BE(topicBytes.length, offset);
  offset += topicBytes.copy(bytes, offset);
  const idOffset = qos === 1 ? offset : -1;
  if (qos === 1) offset += 2;
  payload.copy(bytes, offset);
  return { bytes, idOffset };
}

/**
 * `count` consecutive PUBLISH packets in one buffer, so a whole window goes out in one write
 * (one TLS record, one syscall). Packet identifiers start at `firstId` and wrap within 1-65535
 * (MQTT-2.3.1-1: non-zero).
 */
export function publishBatch(template: PublishTemplate, count: number, firstId: number): Buffer {
  const size = template.bytes.length;
  const out = Buffer.allocUnsafe(size * count);
  let id = firstId;
  for (let index = 0; index < count; index++) {
    const at = index * size;
    template.bytes.copy(out, at);
    if (template.idOffset >= 0) {
      out.writeUInt16BE(id, at + template.idOffset);
      id = id === 65_535 ? 1 : id + 1;
    }
  }
  return out;
}

/** PUBACK (MQTT 3.1.1 §3.4) for a QoS 1 delivery. */
export function pubackPacket(messageId: number): Buffer {
  return Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
}

/** Next packet identifier after `id`, skipping 0. */
export function nextPacketId(id: number, step = 1): number {
  return ((id - 1 + step) % 65_535) + 1;
}

/** What the framer hands over. */
export interface FrameHandlers {
  /** A PUBACK for this packet identifier. */
  puback(messageId: number): void;
  /**
   * A PUBLISH from the broker (a subscriber's delivery); counted, not decoded, except for its
   * packet identifier at QoS 1 or 2 (undefined at QoS 0), which the subscriber must acknowledge.
   */
  publish(messageId: number | undefined): void;
  /** Any other packet, decoded by mqtt-packet. */
  packet(packet: Packet): void;
  /** The stream is not MQTT. */
  error(error: Error): void;
}

/**
 * Splits a byte stream into MQTT packets by their fixed header. Only whole packets are decoded,
 * so one mqtt-packet parser serves every connection: it never holds a partial packet.
 */
export class MqttFramer {
  private pending: Buffer | undefined;

  constructor(private readonly handlers: FrameHandlers) {}

  push(chunk: Buffer): void {
    const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    let offset = 0;
    while (offset < buffer.length) {
      const first = buffer[offset] as number;
      let length = 0;
      let multiplier = 1;
      let position = offset + 1;
      let complete = false;
      // Remaining length: at most 4 bytes (MQTT 3.1.1 §2.2.3).
      for (let index = 0; index < 4 && position < buffer.length; index++) {
        const byte = buffer[position++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        if (index === 3) {
          this.handlers.error(new Error('malformed remaining length'));
          this.pending = undefined;
          return;
        }
      }
      if (!complete || position + length > buffer.length) break;
      const end = position + length;
      const type = first >> 4;
      if (type === 4 && length === 2) this.handlers.puback(buffer.readUInt16BE(position));
      else if (type === 3) this.handlers.publish(((first >> 1) & 3) === 0 ? undefined : buffer.readUInt16BE(position + 2 + buffer.readUInt16BE(position)));
      else {
        const decoded = decodeWhole(buffer.subarray(offset, end));
        if (decoded instanceof Error) {
          this.handlers.error(decoded);
          this.pending = undefined;
          return;
        }
        this.handlers.packet(decoded);
      }
      offset = end;
    }
    this.pending = offset < buffer.length ? Buffer.from(buffer.subarray(offset)) : undefined;
  }
}

let shared: Parser | undefined;
let decoded: Packet | undefined;
let decodeError: Error | undefined;

/** Decodes one complete packet with a parser shared by all connections (parse is synchronous). */
function decodeWhole(bytes: Buffer): Packet | Error {
  if (!shared) {
    shared = parser({ protocolVersion: 4 });
    shared.on('packet', (packet: Packet) => {
      decoded = packet;
    });
    shared.on('error', (error: Error) => {
      decodeError = error;
    });
  }
  decoded = undefined;
  decodeError = undefined;
  shared.parse(bytes);
  if (decodeError || !decoded) {
    // A parser that saw garbage may hold state: start over with a fresh one.
    shared = undefined;
    return decodeError ?? new Error('incomplete packet');
  }
  return decoded;
}
