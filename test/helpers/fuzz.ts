/**
 * A small, seeded mutation fuzzer: a reproducible PRNG, byte- and DER-aware mutators, and a time
 * budget. Every failure message carries the seed and the iteration, so
 * `FLEETGATE_FUZZ_SEED=<seed> npx ava test/fuzz.test.ts` replays it.
 */
import { children, readNode, type DerNode } from '../../device-sdk/src/der-reader.ts';

/** A seeded PRNG (mulberry32): fast, 32-bit state, plenty for choosing mutations. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let value = this.state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Seed from FLEETGATE_FUZZ_SEED, else a fresh one (printed by the test). */
export function fuzzSeed(): number {
  const fromEnv = Number(process.env.FLEETGATE_FUZZ_SEED);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.floor(Math.random() * 2 ** 31) + 1;
}

/** Seconds per fuzz target: FLEETGATE_FUZZ_SECONDS, else `fallback` (kept short for `npm test`). */
export function fuzzSeconds(fallback: number): number {
  const fromEnv = Number(process.env.FLEETGATE_FUZZ_SECONDS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : fallback;
}

/** Bytes that sit on DER boundaries: length forms, tags, BOOLEAN and INTEGER edge values. */
const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xa0, 0xa3, 0xff];

/** Offsets of every TLV in a (lax) walk of `input`; empty when it does not parse at all. */
function tlvOffsets(input: Buffer): Array<{ node: DerNode; offset: number }> {
  const out: Array<{ node: DerNode; offset: number }> = [];
  const walk = (node: DerNode, offset: number, depth: number): void => {
    out.push({ node, offset });
    if (depth > 20 || !(node.tag & 0x20)) return;
    let childOffset = offset + (node.raw.length - node.content.length);
    try {
      for (const child of children(node)) {
        walk(child, childOffset, depth + 1);
        childOffset += child.raw.length;
      }
    } catch {
      // a mutated input may not walk all the way down; what was read is enough
    }
  };
  try {
    walk(readNode(input, 0).node, 0, 0);
  } catch {
    // not DER at all
  }
  return out;
}

/** One random mutation of `input` (never longer than `maxLength`). */
export function mutate(rng: Rng, input: Buffer, maxLength = 16 * 1024): Buffer {
  const at = (n: number): number => rng.int(Math.max(1, n));
  const nodes = rng.next() < 0.6 ? tlvOffsets(input) : [];
  let out: Buffer;
  if (nodes.length > 0) {
    // DER-aware: act on a whole element, so the damage is one structural change.
    const { node, offset } = rng.pick(nodes);
    const end = offset + node.raw.length;
    const header = node.raw.length - node.content.length;
    switch (rng.int(8)) {
      case 0: // duplicate the element
        out = Buffer.concat([input.subarray(0, end), node.raw, input.subarray(end)]);
        break;
      case 1: // remove it
        out = Buffer.concat([input.subarray(0, offset), input.subarray(end)]);
        break;
      case 2: // change its tag
        out = Buffer.from(input);
        out[offset] = rng.pick(INTERESTING);
        break;
      case 3: // re-encode its length in a longer form
        out = Buffer.concat([input.subarray(0, offset + 1), Buffer.from([0x82, node.content.length >> 8, node.content.length & 0xff]), input.subarray(offset + header)]);
        break;
      case 4: // declare a different length
        out = Buffer.from(input);
        out[offset + 1] = ((out[offset + 1] ?? 0) + rng.pick([-2, -1, 1, 2, 4])) & 0xff;
        break;
      case 5: // append an element inside a constructed one (NULL, INTEGER 0, an empty SEQUENCE)
        out = node.tag & 0x20 ? Buffer.concat([input.subarray(0, end), rng.pick([Buffer.from('0500', 'hex'), Buffer.from('020100', 'hex'), Buffer.from('3000', 'hex')]), input.subarray(end)]) : Buffer.from(input);
        break;
      case 6: // replace its content with random bytes of the same length
        out = Buffer.concat([input.subarray(0, offset + header), rng.bytes(node.content.length), input.subarray(end)]);
        break;
      default: // swap with another element
        {
          const other = rng.pick(nodes);
          out = other.offset >= end ? Buffer.concat([input.subarray(0, offset), other.node.raw, input.subarray(end)]) : Buffer.from(input);
        }
        break;
    }
  } else {
    out = Buffer.from(input);
    switch (rng.int(6)) {
      case 0:
        if (out.length > 0) {
          const position = at(out.length);
          out[position] = (out[position] ?? 0) ^ (1 << rng.int(8));
        }
        break;
      case 1:
        if (out.length > 0) out[at(out.length)] = rng.pick(INTERESTING);
        break;
      case 2: {
        const position = at(out.length + 1);
        out = Buffer.concat([out.subarray(0, position), rng.bytes(1 + rng.int(4)), out.subarray(position)]);
        break;
      }
      case 3: {
        const position = at(out.length);
        out = Buffer.concat([out.subarray(0, position), out.subarray(Math.min(out.length, position + 1 + rng.int(8)))]);
        break;
      }
      case 4:
        out = out.subarray(0, at(out.length));
        break;
      default:
        out = Buffer.concat([out, rng.bytes(1 + rng.int(3))]);
    }
  }
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

/** Runs `step` with fresh iterations until `seconds` pass (at least `minIterations` times). */
export function forBudget(seconds: number, minIterations: number, step: (iteration: number) => void): number {
  const deadline = performance.now() + seconds * 1000;
  let iteration = 0;
  while (iteration < minIterations || performance.now() < deadline) step(iteration++);
  return iteration;
}
