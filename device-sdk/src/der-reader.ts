/**
 * The one strict DER reader of fleetgate (X.690 §10, "distinguished encoding rules"). The SDK
 * reads EST certs-only answers with it and the server re-exports it for CSRs and certificates,
 * so both sides refuse the same inputs: the SDK never imports the server, so the reader lives
 * here.
 *
 * Strict means one encoding per value, refused rather than trimmed: definite lengths only
 * (§10.1), in the fewest octets (§10.1, X.690 §8.1.3.5 note), single-octet tags, a child never
 * runs past its parent, no bytes after the outer element, and the primitive decoders below check
 * their own DER rules (INTEGER minimal §8.3.2, BOOLEAN 0x00/0xFF §11.1, NULL empty §8.8.2,
 * BIT STRING unused bits zero §11.2.1, OID arcs minimal §8.19.2).
 *
 * Why hand-written instead of asn1js/pkijs, measured 2026-12-01 on the shared 2-core machine
 * (Node 20.20; parsing fleetgate's certs-only answer with root, issuing and factory CA
 * certificates, 1,471 bytes; the machine was heavily loaded, so ratios matter more than times):
 * - time per answer, best of 7 rounds: this reader (every certificate checked as strict DER
 *   throughout) 74 us; asn1js.fromBER + pkijs ContentInfo/SignedData 31,900 us (median 222 us
 *   against 43,800 us);
 * - bundle weight (esbuild --bundle --minify, platform node): the PKCS#7 path with this reader
 *   3.4 KB (1.6 KB gzip); with pkijs 405 KB (86 KB gzip), of which asn1js alone is 67 KB
 *   (17 KB gzip; the SDK no longer uses asn1js at all: CSRs are written as DER in csr.ts).
 * Enrollment is a cold path on a device, so the time matters less than the weight; what decides
 * it is one reader with one set of rules for server and SDK.
 */

import { FleetgateError } from './fleetgate-error.ts';

/** The reader's error codes (docs/errors.md, "DER reader"). */
export const DER_ERRORS = {
  /** Malformed DER, or not its single distinguished encoding. */
  DER_INVALID: {},
} as const;

/** Thrown when DER input is malformed or not in its single distinguished encoding. */
export class DerError extends FleetgateError<keyof typeof DER_ERRORS> {
  override readonly name = 'DerError';
  constructor(message: string, options?: ErrorOptions) {
    super('DER_INVALID', message, options);
  }
}

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

/** One decoded TLV: tag, where its content sits, and the whole element's bytes. */
export interface DerNode {
  readonly tag: number;
  /** Whole encoding, header included (a view into the input, not a copy). */
  readonly raw: Buffer;
  /** Content bytes only (a view into the input). */
  readonly content: Buffer;
}

/**
 * At most 4 length octets: 4 GiB is far beyond anything fleetgate reads, and it keeps the
 * arithmetic exact in a double.
 */
const MAX_LENGTH_OCTETS = 4;

/**
 * Reads one TLV at `offset` of `input` (strict DER: definite, minimal lengths; single-byte tags).
 * The element must end within `input`; pass a parent's `content` to keep a child inside it.
 * Returns the node and the offset just after it.
 */
export function readNode(input: Buffer, offset = 0): { node: DerNode; next: number } {
  if (offset + 2 > input.length) throw new DerError('truncated DER header');
  const tag = input[offset] as number;
  // Tag number 31 announces a multi-octet tag (X.690 §8.1.2.4); nothing fleetgate reads uses one.
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
    // X.690 §10.1: the definite form in the minimum number of octets.
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

/**
 * Children of a constructed node. Each child is read inside the parent's content, so a child that
 * declares more bytes than its parent holds is refused (never read from what follows the parent).
 */
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

/**
 * Checks that every constructed element under `node` reads strictly, down to `maxDepth` levels
 * (X.509 certificates nest about 8 deep). Primitive contents are left to their decoders.
 */
export function checkTree(node: DerNode, maxDepth = 32): void {
  if (!(node.tag & 0x20)) return;
  if (maxDepth <= 0) throw new DerError('DER nested too deeply');
  for (const child of children(node)) checkTree(child, maxDepth - 1);
}

/** Children of a node that must carry `tag`. */
export function expectChildren(node: DerNode | undefined, tag: number, what: string): DerNode[] {
  expectTag(node, tag, what);
  return children(node);
}

/**
 * Children of a node that must carry `tag` and hold between `min` and `max` elements: the
 * reader's answer to "an extra element" (refused, never ignored).
 */
export function expectCount(node: DerNode | undefined, tag: number, what: string, min: number, max = min): DerNode[] {
  const parts = expectChildren(node, tag, what);
  if (parts.length < min || parts.length > max) {
    throw new DerError(`${what}: expected ${min === max ? min : `${min} to ${max}`} elements, found ${parts.length}`);
  }
  return parts;
}

/** Asserts that `node` is present and carries `tag`. */
export function expectTag(node: DerNode | undefined, tag: number, what: string): asserts node is DerNode {
  if (!node) throw new DerError(`${what}: missing`);
  if (node.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)}`);
  }
}

/** Decodes OBJECT IDENTIFIER content into dotted notation (arcs minimal, X.690 §8.19.2). */
export function decodeOid(node: DerNode): string {
  expectTag(node, Tag.OID, 'OBJECT IDENTIFIER');
  const bytes = node.content;
  if (bytes.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let arcStart = true;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (arcStart && byte === 0x80) throw new DerError('non-minimal OID arc');
    arcStart = false;
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
      arcStart = true;
    } else if (i === bytes.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return arcs.join('.');
}

/**
 * INTEGER content as a bigint. X.690 §8.3.2: at least one octet, and the first nine bits are never
 * all zeros or all ones (the minimal two's complement form).
 */
export function decodeInteger(node: DerNode | undefined, what = 'INTEGER'): bigint {
  expectTag(node, Tag.INTEGER, what);
  const bytes = node.content;
  if (bytes.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (bytes.length > 1) {
    const first = bytes[0] as number;
    const second = bytes[1] as number;
    if ((first === 0x00 && !(second & 0x80)) || (first === 0xff && second & 0x80)) {
      throw new DerError(`${what}: non-minimal INTEGER`);
    }
  }
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  if ((bytes[0] as number) & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value;
}

/** BOOLEAN: one octet, 0x00 or 0xFF in DER (X.690 §11.1). */
export function decodeBoolean(node: DerNode | undefined, what = 'BOOLEAN'): boolean {
  expectTag(node, Tag.BOOLEAN, what);
  if (node.content.length !== 1) throw new DerError(`${what}: BOOLEAN must be one octet`);
  const value = node.content[0];
  if (value === 0xff) return true;
  if (value === 0x00) return false;
  throw new DerError(`${what}: BOOLEAN must be 0x00 or 0xFF in DER`);
}

/** NULL: no content (X.690 §8.8.2). */
export function expectNull(node: DerNode | undefined, what = 'NULL'): void {
  expectTag(node, Tag.NULL, what);
  if (node.content.length !== 0) throw new DerError(`${what}: NULL with content`);
}

/** Decodes a string type (UTF8String, PrintableString, IA5String, ...) to text. */
export function decodeString(node: DerNode): string {
  switch (node.tag) {
    case Tag.UTF8_STRING: {
      const text = node.content.toString('utf8');
      // Buffer decoding replaces bad sequences with U+FFFD; a round trip finds them.
      if (!Buffer.from(text, 'utf8').equals(node.content)) throw new DerError('UTF8String is not valid UTF-8');
      return text;
    }
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
export function decodeBitStringBytes(node: DerNode | undefined, what = 'BIT STRING'): Buffer {
  expectTag(node, Tag.BIT_STRING, what);
  if (node.content.length < 1) throw new DerError(`${what}: empty BIT STRING`);
  if (node.content[0] !== 0) throw new DerError(`${what}: BIT STRING with unused bits where bytes are expected`);
  return node.content.subarray(1);
}

/**
 * A named bit list (KeyUsage): the numbers of the bits set. DER (X.690 §11.2.1, §11.2.2): unused
 * bits 0-7 and zero, no trailing zero bits, so the last octet's lowest used bit is set.
 */
export function decodeNamedBits(node: DerNode | undefined, what = 'BIT STRING'): number[] {
  expectTag(node, Tag.BIT_STRING, what);
  const unused = node.content[0];
  if (unused === undefined) throw new DerError(`${what}: empty BIT STRING`);
  if (unused > 7 || (node.content.length === 1 && unused !== 0)) throw new DerError(`${what}: bad unused-bits count`);
  const bytes = node.content.subarray(1);
  const last = bytes.at(-1);
  if (last !== undefined && (last & ((1 << unused) - 1)) !== 0) throw new DerError(`${what}: unused bits must be zero`);
  if (last !== undefined && !(last & (1 << unused))) throw new DerError(`${what}: trailing zero bits in a named bit list`);
  const bits: number[] = [];
  bytes.forEach((byte, index) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (0x80 >> bit)) bits.push(index * 8 + bit);
  });
  return bits;
}

/**
 * Elements of a SET OF, which DER sorts by encoding (X.690 §11.6); an unsorted or duplicated set is
 * a second encoding of the same value.
 */
export function setOfChildren(node: DerNode | undefined, what: string): DerNode[] {
  const parts = expectChildren(node, Tag.SET, what);
  for (let i = 1; i < parts.length; i++) {
    if (Buffer.compare((parts[i - 1] as DerNode).raw, (parts[i] as DerNode).raw) > 0) {
      throw new DerError(`${what}: SET OF elements are not in DER order`);
    }
  }
  return parts;
}
