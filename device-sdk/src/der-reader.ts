/**
 * Just enough DER reading to take certificates out of an EST certs-only answer. asn1js with the
 * pkijs schemas costs about two milliseconds per answer, which a fleet of thousands of simulated
 * devices (or a small MCU-class CPU) feels; the structure here is fixed and tiny.
 */

/** One TLV: tag, content bounds, and the whole element. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads the TLV at `offset`; throws on anything that is not definite-length DER within bounds. */
export function readTlv(input: Uint8Array, offset: number): Tlv {
  if (offset + 2 > input.length) throw new RangeError('truncated DER');
  const tag = input[offset] as number;
  let length = input[offset + 1] as number;
  let header = 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || offset + 2 + octets > input.length) throw new RangeError('bad DER length');
    length = 0;
    for (let index = 0; index < octets; index++) length = length * 256 + (input[offset + 2 + index] as number);
    header += octets;
  }
  const end = offset + header + length;
  if (end > input.length) throw new RangeError('truncated DER content');
  return { tag, start: offset, contentStart: offset + header, end };
}

/** The TLVs inside a constructed TLV. */
export function childrenOf(input: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readTlv(input, offset);
    out.push(child);
    offset = child.end;
  }
  return out;
}
