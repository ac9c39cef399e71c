/**
 * A minimal, strict DER encoder and decoder.
 *
 * Why not pkijs here: issuing a certificate is the hot path of enrollment, and pkijs' schema layer
 * spends about a millisecond building one certificate where the signature itself costs 25 us.
 * Certificates and CSRs are small, fixed shapes, so a direct encoder over Buffers keeps the
 * JavaScript ASN.1 work below the TLS handshake. pkijs stays the independent parser that tests
 * use to check what this module writes (test/pki-*.test.ts), and `openssl` checks it too.
 */

// The one strict DER reader lives in the device SDK (the SDK never imports the server, so the
// server imports it); this module adds the encoder.
import { DerError, Tag } from '@fleetgate/device-sdk/der';
export * from '@fleetgate/device-sdk/der';

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Encodes one TLV. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

/** SEQUENCE of already-encoded elements. */
export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(Tag.SEQUENCE, Buffer.concat(items));
}

/** SET OF already-encoded elements, sorted as DER requires (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Buffer {
  const sorted = [...items].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return tlv(Tag.SET, Buffer.concat(sorted));
}

/** [n] EXPLICIT wrapper (constructed context-specific tag). */
export function explicit(tagNumber: number, inner: Uint8Array): Buffer {
  return tlv(0xa0 | tagNumber, inner);
}

/** [n] IMPLICIT primitive context-specific tag over raw content bytes. */
export function implicitPrimitive(tagNumber: number, content: Uint8Array): Buffer {
  return tlv(0x80 | tagNumber, content);
}

/** INTEGER from a non-negative bigint or unsigned big-endian bytes (minimal two's complement). */
export function integer(value: bigint | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'bigint') {
    if (value < 0n) throw new DerError('negative INTEGER is not supported');
    let hex = value.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    bytes = Buffer.from(hex, 'hex');
  } else {
    bytes = Buffer.from(value);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(Tag.INTEGER, bytes);
}

export function boolean(value: boolean): Buffer {
  return tlv(Tag.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

export function nullValue(): Buffer {
  return Buffer.from([Tag.NULL, 0]);
}

export function octetString(content: Uint8Array): Buffer {
  return tlv(Tag.OCTET_STRING, content);
}

/** BIT STRING with the given number of unused bits in the last byte. */
export function bitString(content: Uint8Array, unusedBits = 0): Buffer {
  return tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/**
 * BIT STRING for a named bit list such as KeyUsage: trailing zero bits are dropped (X.690 §11.2.2).
 * `bits` holds the bit numbers that are set (bit 0 is the most significant bit of the first byte).
 */
export function namedBitString(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  const unused = 7 - (highest & 7);
  return bitString(bytes, unused);
}

export function utf8String(value: string): Buffer {
  return tlv(Tag.UTF8_STRING, Buffer.from(value, 'utf8'));
}

export function printableString(value: string): Buffer {
  return tlv(Tag.PRINTABLE_STRING, Buffer.from(value, 'latin1'));
}

export function ia5String(value: string): Buffer {
  return tlv(Tag.IA5_STRING, Buffer.from(value, 'latin1'));
}

const oidCache = new Map<string, Buffer>();

/** OBJECT IDENTIFIER from dotted notation (cached: the same few OIDs are encoded all day). */
export function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  const parts = dotted.split('.');
  const arcs = parts.map((part) => Number(part));
  // Plain decimal arcs only; X.690 §8.19.4 can encode first arcs 0-2, and second arcs below 40
  // under 0 and 1.
  const representable = (arcs[0] ?? 3) <= 2 && ((arcs[0] ?? 0) === 2 || (arcs[1] ?? 40) < 40);
  if (parts.length < 2 || parts.some((part) => !/^(0|[1-9]\d*)$/.test(part)) || arcs.some((arc) => !Number.isSafeInteger(arc)) || !representable) {
    throw new DerError(`invalid OID ${dotted}`);
  }
  const out: number[] = [];
  const encodeArc = (arc: number): void => {
    const group: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) {
      group.unshift((rest & 0x7f) | 0x80);
    }
    out.push(...group);
  };
  encodeArc((arcs[0] ?? 0) * 40 + (arcs[1] ?? 0));
  for (const arc of arcs.slice(2)) encodeArc(arc);
  const encoded = tlv(Tag.OID, Buffer.from(out));
  oidCache.set(dotted, encoded);
  return encoded;
}

/** Time as UTCTime up to 2049 and GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const compact = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  if (year >= 1950 && year <= 2049) return tlv(Tag.UTC_TIME, Buffer.from(compact.slice(2), 'latin1'));
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(compact, 'latin1'));
}
