/**
 * A minimal, strict DER encoder and decoder.
 *
 * Why not pkijs here: issuing a certificate is the hot path of enrollment, and pkijs' schema layer
 * spends about a millisecond building one certificate where the signature itself costs 25 us.
 * Certificates and CSRs are small, fixed shapes, so a direct encoder over Buffers keeps the
 * JavaScript ASN.1 work below the TLS handshake. pkijs stays the independent parser that tests
 * use to check what this module writes (test/pki-*.test.ts), and `openssl` checks it too.
 */

import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { PkiErrorCode } from './errors.ts';

/** ASN.1 universal tags used by X.509, PKCS#10 and CMS. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * Thrown when DER input is malformed (or a value cannot be encoded). CSR parsing turns it into
 * `PKI_CSR_MALFORMED`; it is not a {@link PkiError} so that the CSR parser can tell the two apart.
 */
export class DerError extends FleetgateError<Extract<PkiErrorCode, 'PKI_DER_INVALID'>> {
  override readonly name = 'DerError';
  constructor(message: string, options?: ErrorOptions) {
    super('PKI_DER_INVALID', message, options);
  }
}

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

/** One decoded TLV: tag, where its content sits, and the whole element's bytes. */
export interface DerNode {
  readonly tag: number;
  /** Whole encoding, header included. */
  readonly raw: Buffer;
  /** Content bytes only. */
  readonly content: Buffer;
}

/** Limits that keep a hostile input from costing more than it should. */
const MAX_LENGTH_OCTETS = 4;

/**
 * Reads one TLV at `offset` of `input` (strict DER: definite, minimal lengths; single-byte tags).
 * Returns the node and the offset just after it.
 */
export function readNode(input: Buffer, offset = 0): { node: DerNode; next: number } {
  if (offset + 2 > input.length) throw new DerError('truncated DER header');
  const tag = input[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let length = input[offset + 1] as number;
  let headerLength = 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0) throw new DerError('indefinite length is not DER');
    if (octets > MAX_LENGTH_OCTETS) throw new DerError('DER length too large');
    if (offset + 2 + octets > input.length) throw new DerError('truncated DER length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (input[offset + 2 + i] as number);
    if (length < 0x80 || (octets > 1 && input[offset + 2] === 0)) {
      throw new DerError('non-minimal DER length');
    }
    headerLength += octets;
  }
  const end = offset + headerLength + length;
  if (end > input.length) throw new DerError('truncated DER content');
  return {
    node: {
      tag,
      raw: input.subarray(offset, end),
      content: input.subarray(offset + headerLength, end),
    },
    next: end,
  };
}

/** Decodes a buffer that must hold exactly one TLV (no trailing bytes). */
export function decodeSingle(input: Buffer): DerNode {
  const { node, next } = readNode(input, 0);
  if (next !== input.length) throw new DerError('trailing bytes after DER element');
  return node;
}

/** Children of a constructed node. */
export function children(node: DerNode): DerNode[] {
  if (!(node.tag & 0x20)) throw new DerError(`tag 0x${node.tag.toString(16)} is not constructed`);
  const out: DerNode[] = [];
  let offset = 0;
  while (offset < node.content.length) {
    const { node: child, next } = readNode(node.content, offset);
    out.push(child);
    offset = next;
  }
  return out;
}

/** Children of a node that must carry `tag`. */
export function expectChildren(node: DerNode, tag: number, what: string): DerNode[] {
  expectTag(node, tag, what);
  return children(node);
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): asserts node is DerNode {
  if (!node) throw new DerError(`${what}: missing`);
  if (node.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)}`);
  }
}

/** Decodes OBJECT IDENTIFIER content into dotted notation. */
export function decodeOid(node: DerNode): string {
  expectTag(node, Tag.OID, 'OBJECT IDENTIFIER');
  const bytes = node.content;
  if (bytes.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (value === 0 && byte === 0x80) throw new DerError('non-minimal OID arc');
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError('OID arc too large');
    if (!(byte & 0x80)) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        arcs.push(first, value - first * 40);
      } else {
        arcs.push(value);
      }
      value = 0;
    } else if (i === bytes.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return arcs.join('.');
}

/** Decodes a string type (UTF8String, PrintableString, IA5String, ...) to text. */
export function decodeString(node: DerNode): string {
  switch (node.tag) {
    case Tag.UTF8_STRING:
      return node.content.toString('utf8');
    case Tag.PRINTABLE_STRING:
    case Tag.IA5_STRING:
    case 0x14: // TeletexString, read as Latin-1
      return node.content.toString('latin1');
    case 0x1e: // BMPString: UTF-16 big-endian
      if (node.content.length % 2) throw new DerError('odd-length BMPString');
      return Buffer.from(node.content).swap16().toString('utf16le');
    default:
      throw new DerError(`tag 0x${node.tag.toString(16)} is not a string`);
  }
}

/** BIT STRING content without the unused-bits octet; only whole-byte strings are accepted. */
export function decodeBitStringBytes(node: DerNode): Buffer {
  expectTag(node, Tag.BIT_STRING, 'BIT STRING');
  if (node.content.length < 1) throw new DerError('empty BIT STRING');
  if (node.content[0] !== 0) throw new DerError('BIT STRING with unused bits where bytes are expected');
  return node.content.subarray(1);
}
