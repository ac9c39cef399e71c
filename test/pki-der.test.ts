/**
 * Known-answer tests of the DER encoder/decoder (server/src/pki/der.ts), cross-checked with asn1js,
 * an implementation independent of ours (STYLE §6).
 */
import test from 'ava';
import * as asn1js from 'asn1js';
import {
  bitString,
  boolean,
  children,
  decodeBitStringBytes,
  decodeOid,
  decodeSingle,
  DerError,
  integer,
  namedBitString,
  nullValue,
  octetString,
  oid,
  printableString,
  readNode,
  sequence,
  setOf,
  Tag,
  time,
  tlv,
  utf8String,
} from '../server/src/pki/der.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytes = (spaced: string): Buffer => Buffer.from(spaced.replace(/\s+/g, ''), 'hex');

/** Parses with asn1js and insists that it consumed exactly the whole input. */
function asn1(der: Buffer): asn1js.AsnType {
  const parsed = asn1js.fromBER(new Uint8Array(der));
  if (parsed.offset !== der.length) throw new Error(`asn1js could not parse ${hex(der)}: ${parsed.result.error}`);
  return parsed.result;
}

// ---------------------------------------------------------------------------------------------
// INTEGER

const INTEGER_VECTORS: ReadonlyArray<readonly [bigint, string]> = [
  [0n, '020100'],
  [1n, '020101'],
  [127n, '02017f'],
  [128n, '02020080'],
  [255n, '020200ff'],
  [256n, '02020100'],
  [32767n, '02027fff'],
  [32768n, '0203008000'],
  [65535n, '020300ffff'],
  [65536n, '0203010000'],
];

for (const [value, expected] of INTEGER_VECTORS) {
  test(`integer(${value}) is ${expected}`, (t) => {
    t.is(hex(integer(value)), expected);
    const parsed = asn1(integer(value));
    t.true(parsed instanceof asn1js.Integer);
    if (parsed instanceof asn1js.Integer) t.is(parsed.toBigInt(), value);
  });
}

test('a 16-byte value with the top bit set gets a leading 00 (it stays positive)', (t) => {
  const raw = bytes('80 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff');
  const expected = `021100${hex(raw)}`;
  t.is(hex(integer(raw)), expected);
  t.is(hex(integer(BigInt(`0x${hex(raw)}`))), expected);
  const parsed = asn1(integer(raw));
  if (!(parsed instanceof asn1js.Integer)) return t.fail('asn1js did not read an INTEGER');
  t.is(parsed.toBigInt(), BigInt(`0x${hex(raw)}`));
  t.true(parsed.toBigInt() > 0n);
});

test('a 16-byte value with the top bit clear is 16 content bytes, no padding', (t) => {
  const raw = bytes('7f 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff');
  t.is(hex(integer(raw)), `0210${hex(raw)}`);
});

test('integer from bytes strips redundant leading zeros (minimal two\'s complement)', (t) => {
  t.is(hex(integer(bytes('00 00 01'))), '020101');
  t.is(hex(integer(bytes('00 00 80'))), '02020080');
  t.is(hex(integer(bytes('00 00 00'))), '020100');
  t.is(hex(integer(new Uint8Array(0))), '020100');
});

test('negative integers are refused, not encoded as if positive', (t) => {
  t.throws(() => integer(-1n), { instanceOf: DerError });
});

// ---------------------------------------------------------------------------------------------
// OBJECT IDENTIFIER

const OID_VECTORS: ReadonlyArray<readonly [string, string]> = [
  ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'], // ecdsa-with-SHA256
  ['1.2.840.10045.4.3.3', '06082a8648ce3d040303'], // ecdsa-with-SHA384
  ['1.2.840.10045.2.1', '06072a8648ce3d0201'], // id-ecPublicKey
  ['1.2.840.10045.3.1.7', '06082a8648ce3d030107'], // prime256v1
  ['1.3.132.0.34', '06052b81040022'], // secp384r1
  ['2.5.29.17', '0603551d11'], // subjectAltName
  ['2.5.4.3', '0603550403'], // commonName
  ['1.3.6.1.5.5.7.3.2', '06082b06010505070302'], // clientAuth
  ['1.2.840.113549.1.9.14', '06092a864886f70d01090e'], // extensionRequest
  ['2.999.3', '0603883703'], // X.690 §8.19.5 example: first subidentifier 1079
  ['0.0', '060100'],
];

for (const [dotted, expected] of OID_VECTORS) {
  test(`oid(${dotted}) is ${expected} and decodes back`, (t) => {
    t.is(hex(oid(dotted)), expected);
    t.is(decodeOid(decodeSingle(oid(dotted))), dotted);
    const parsed = asn1(oid(dotted));
    t.true(parsed instanceof asn1js.ObjectIdentifier);
    if (parsed instanceof asn1js.ObjectIdentifier) t.is(parsed.getValue(), dotted);
  });
}

test('decodeOid round-trips large arcs and many arcs', (t) => {
  for (const dotted of ['1.3.6.1.4.1.311.21.20', '1.2.4294967295.128.16383.16384.2097151', '2.25.9007199254740991', '1.3.6.1.4.1.55555.1.2.3.4.5.6.7.8.9']) {
    t.is(decodeOid(decodeSingle(oid(dotted))), dotted, dotted);
    const parsed = asn1(oid(dotted));
    if (parsed instanceof asn1js.ObjectIdentifier) t.is(parsed.getValue(), dotted, `asn1js reads ${dotted}`);
    else t.fail('asn1js did not read an OBJECT IDENTIFIER');
  }
});

test('decodeOid reads OIDs encoded by asn1js', (t) => {
  for (const dotted of ['1.2.840.113549.1.1.11', '2.16.840.1.113730.1.13', '2.5.29.37']) {
    const der = Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER(false));
    t.is(decodeOid(decodeSingle(der)), dotted);
  }
});

/** The dotted strings among `candidates` that oid() encodes instead of refusing, with what the bytes decode as. */
function acceptedByOid(candidates: readonly string[]): string[] {
  const accepted: string[] = [];
  for (const candidate of candidates) {
    try {
      const encoded = oid(candidate);
      let decoded: string;
      try {
        decoded = decodeOid(decodeSingle(encoded));
      } catch {
        decoded = '(undecodable)';
      }
      accepted.push(`${JSON.stringify(candidate)} -> ${hex(encoded)} (decodes as ${decoded})`);
    } catch (error) {
      if (!(error instanceof DerError)) accepted.push(`${JSON.stringify(candidate)} -> threw ${String(error)} instead of a DerError`);
    }
  }
  return accepted;
}

test('oid refuses dotted strings that are not OIDs', (t) => {
  t.deepEqual(acceptedByOid(['', '1', 'x.2', '1.2.x', '1.-2', '1.2.3.9007199254740992']), []);
});

test('oid refuses arcs that are not plain decimal numbers (empty, hex, exponent, blanks)', (t) => {
  // Number() reads '' as 0, '0x10' as 16, '1e3' as 1000 and ' 3' as 3: such strings are typos, not OIDs.
  t.deepEqual(acceptedByOid(['1..2', '1.2.', '.1.2', '1.2.0x10', '1.2.1e3', '1.2. 3', '1.2.3.5.']), []);
});

test('oid refuses first/second arcs X.690 §8.19.4 cannot represent (they would decode as another OID)', (t) => {
  // The first two arcs share one subidentifier (40 * first + second): the first arc is 0, 1 or 2, and
  // under 0 or 1 the second is below 40. Otherwise the bytes decode as a different OID.
  t.deepEqual(acceptedByOid(['3.1', '1.40', '0.40', '7.2.3']), []);
  t.deepEqual(acceptedByOid(['0.39', '1.39', '2.40', '2.999']), ['0.39', '1.39', '2.40', '2.999'].map((dotted) => `${JSON.stringify(dotted)} -> ${hex(oid(dotted))} (decodes as ${dotted})`));
});

test('decodeOid rejects malformed contents', (t) => {
  t.throws(() => decodeOid(decodeSingle(bytes('06 00'))), { instanceOf: DerError, message: /empty/ });
  t.throws(() => decodeOid(decodeSingle(bytes('06 02 80 01'))), { instanceOf: DerError, message: /non-minimal/ });
  t.throws(() => decodeOid(decodeSingle(bytes('06 02 2a 86'))), { instanceOf: DerError, message: /truncated/ });
  t.throws(() => decodeOid(decodeSingle(bytes('04 01 2a'))), { instanceOf: DerError, message: /expected tag 0x6/ });
});

// ---------------------------------------------------------------------------------------------
// Lengths

test('short-form lengths up to 127, long form from 128 on', (t) => {
  const cases: ReadonlyArray<readonly [number, string]> = [
    [0, '0400'],
    [127, '047f'],
    [128, '048180'],
    [200, '0481c8'],
    [255, '0481ff'],
    [256, '04820100'],
    [300, '0482012c'],
    [65535, '0482ffff'],
    [65536, '0483010000'],
  ];
  for (const [length, header] of cases) {
    const encoded = octetString(Buffer.alloc(length, 0xab));
    t.is(hex(encoded.subarray(0, header.length / 2)), header, `length ${length}`);
    t.is(encoded.length, header.length / 2 + length);
    const node = decodeSingle(encoded);
    t.is(node.content.length, length);
    t.is(node.tag, Tag.OCTET_STRING);
    const parsed = asn1(encoded);
    if (parsed instanceof asn1js.OctetString) t.is(parsed.valueBlock.valueHexView.length, length);
    else t.fail('asn1js did not read an OCTET STRING');
  }
});

test('a SEQUENCE of 200 content bytes is 30 81 c8, of 300 bytes 30 82 01 2c', (t) => {
  const inner200 = Buffer.concat([utf8String('a'.repeat(100)), utf8String('b'.repeat(96))]); // 102 + 98 = 200
  t.is(inner200.length, 200);
  t.is(hex(sequence(inner200).subarray(0, 3)), '3081c8');
  const inner300 = Buffer.concat([octetString(Buffer.alloc(147)), octetString(Buffer.alloc(147))]); // 2 * (3 + 147)
  t.is(inner300.length, 300);
  t.is(hex(sequence(inner300).subarray(0, 4)), '3082012c');
  const parsed = decodeSingle(sequence(inner300));
  t.is(children(parsed).length, 2);
});

// ---------------------------------------------------------------------------------------------
// Time

test('UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', (t) => {
  const cases: ReadonlyArray<readonly [string, number, string]> = [
    ['2049-12-31T23:59:59Z', Tag.UTC_TIME, '491231235959Z'],
    ['2050-01-01T00:00:00Z', Tag.GENERALIZED_TIME, '20500101000000Z'],
    ['2026-03-04T05:06:07Z', Tag.UTC_TIME, '260304050607Z'],
    ['1950-01-01T00:00:00Z', Tag.UTC_TIME, '500101000000Z'],
    ['1949-12-31T23:59:59Z', Tag.GENERALIZED_TIME, '19491231235959Z'],
    ['9999-12-31T23:59:59Z', Tag.GENERALIZED_TIME, '99991231235959Z'],
  ];
  for (const [iso, tag, text] of cases) {
    const encoded = time(new Date(iso));
    t.is(encoded[0], tag, iso);
    t.is(encoded.subarray(2).toString('latin1'), text, iso);
    t.is(encoded[1], text.length);
    const parsed = asn1(encoded);
    if (tag === Tag.GENERALIZED_TIME) t.true(parsed instanceof asn1js.GeneralizedTime, iso);
    else t.true(parsed instanceof asn1js.UTCTime && !(parsed instanceof asn1js.GeneralizedTime), iso);
    if (parsed instanceof asn1js.UTCTime) t.is(parsed.toDate().getTime(), Date.parse(iso), `asn1js reads ${iso}`);
  }
});

test('time drops milliseconds: no fractional seconds in certificates (RFC 5280 §4.1.2.5.2)', (t) => {
  t.is(time(new Date('2030-06-01T12:00:00.999Z')).subarray(2).toString('latin1'), '300601120000Z');
  t.is(time(new Date('2050-06-01T12:00:00.999Z')).subarray(2).toString('latin1'), '20500601120000Z');
});

// ---------------------------------------------------------------------------------------------
// BIT STRING

test('namedBitString drops trailing zero bits (X.690 §11.2.2)', (t) => {
  t.is(hex(namedBitString([0])), '03020780', 'digitalSignature only');
  t.is(hex(namedBitString([5, 6])), '03020106', 'keyCertSign + cRLSign');
  t.is(hex(namedBitString([6, 5])), '03020106', 'order does not matter');
  t.is(hex(namedBitString([0, 2])), '030205a0', 'digitalSignature + keyEncipherment');
  t.is(hex(namedBitString([7])), '03020001', 'encipherOnly');
  t.is(hex(namedBitString([8])), '0303070080', 'decipherOnly needs a second byte');
  t.is(hex(namedBitString([])), '030100', 'no bits');
  for (const bits of [[0], [5, 6], [8]]) {
    const parsed = asn1(namedBitString(bits));
    if (!(parsed instanceof asn1js.BitString)) return t.fail('asn1js did not read a BIT STRING');
    const view = parsed.valueBlock.valueHexView;
    const set: number[] = [];
    for (let bit = 0; bit < view.length * 8 - parsed.valueBlock.unusedBits; bit++) {
      if (((view[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) set.push(bit);
    }
    t.deepEqual(set, bits, `asn1js reads bits ${bits.join(',')}`);
  }
});

test('bitString and decodeBitStringBytes', (t) => {
  t.is(hex(bitString(bytes('0102'))), '0303000102');
  t.is(hex(decodeBitStringBytes(decodeSingle(bytes('03 03 00 01 02')))), '0102');
  t.throws(() => decodeBitStringBytes(decodeSingle(bytes('03 02 07 80'))), { instanceOf: DerError, message: /unused bits/ });
  t.throws(() => decodeBitStringBytes(decodeSingle(bytes('03 00'))), { instanceOf: DerError, message: /empty/ });
});

// ---------------------------------------------------------------------------------------------
// Constructed types, SET OF

test('setOf sorts its elements by their encodings (X.690 §11.6), leaving the input alone', (t) => {
  const two = integer(2n);
  const one = integer(1n);
  t.is(hex(setOf(two, one)), '3106020101020102');
  t.is(hex(setOf(one, two)), '3106020101020102');
  const items = [utf8String('b'), printableString('z'), utf8String('a')];
  const before = items.map(hex);
  // UTF8String (0x0c) sorts before PrintableString (0x13); within a tag, by content.
  t.is(hex(setOf(...items)), `3109${hex(utf8String('a'))}${hex(utf8String('b'))}${hex(printableString('z'))}`);
  t.deepEqual(items.map(hex), before);
  // Longer encodings of the same tag: a shorter length octet sorts first.
  t.is(hex(setOf(utf8String('aa'), utf8String('b'))), `3107${hex(utf8String('b'))}${hex(utf8String('aa'))}`);
  const parsed = asn1(setOf(two, one));
  t.true(parsed instanceof asn1js.Set);
});

test('sequence, explicit tags, boolean and null have their fixed encodings', (t) => {
  t.is(hex(sequence()), '3000');
  t.is(hex(sequence(integer(1n), nullValue())), '30050201010500');
  t.is(hex(boolean(true)), '0101ff');
  t.is(hex(boolean(false)), '010100');
  t.is(hex(tlv(0xa0, integer(2n))), 'a003020102');
  const parsed = asn1(sequence(oid('2.5.29.19'), boolean(true), octetString(sequence(boolean(true), integer(0n)))));
  t.true(parsed instanceof asn1js.Sequence);
});

// ---------------------------------------------------------------------------------------------
// Decoder strictness

test('decoder rejects indefinite lengths', (t) => {
  t.throws(() => decodeSingle(bytes('30 80 02 01 00 00 00')), { instanceOf: DerError, message: /indefinite/ });
});

test('decoder rejects non-minimal lengths', (t) => {
  t.throws(() => decodeSingle(bytes('04 81 05 0102030405')), { instanceOf: DerError, message: /non-minimal/ }, '81 05');
  t.throws(() => decodeSingle(Buffer.concat([bytes('04 81 7f'), Buffer.alloc(127)])), { instanceOf: DerError, message: /non-minimal/ }, '81 7f');
  t.throws(() => decodeSingle(Buffer.concat([bytes('04 82 00 c8'), Buffer.alloc(200)])), { instanceOf: DerError, message: /non-minimal/ }, '82 00 c8');
  t.throws(() => decodeSingle(Buffer.concat([bytes('04 83 00 01 2c'), Buffer.alloc(300)])), { instanceOf: DerError, message: /non-minimal/ }, '83 00 01 2c');
  // The minimal forms of the same lengths are accepted.
  t.is(decodeSingle(Buffer.concat([bytes('04 81 c8'), Buffer.alloc(200)])).content.length, 200);
  t.is(decodeSingle(Buffer.concat([bytes('04 82 01 2c'), Buffer.alloc(300)])).content.length, 300);
});

test('decoder rejects truncated input', (t) => {
  t.throws(() => decodeSingle(Buffer.alloc(0)), { instanceOf: DerError, message: /truncated/ }, 'empty');
  t.throws(() => decodeSingle(bytes('04')), { instanceOf: DerError, message: /truncated/ }, 'tag only');
  t.throws(() => decodeSingle(bytes('04 05 01 02')), { instanceOf: DerError, message: /truncated/ }, 'short content');
  t.throws(() => decodeSingle(bytes('04 82 01')), { instanceOf: DerError, message: /truncated/ }, 'short length');
  t.throws(() => decodeSingle(bytes('04 84 7f ff ff ff 00')), { instanceOf: DerError, message: /truncated/ }, 'huge declared length');
  // A child that runs past its parent's end.
  t.throws(() => children(decodeSingle(bytes('30 03 04 05 00'))), { instanceOf: DerError, message: /truncated/ }, 'child');
  // Every strict prefix of a real encoding is refused.
  const whole = sequence(oid('1.2.840.10045.4.3.2'), integer(BigInt('0x80112233445566778899aabbccddeeff')));
  for (let cut = 0; cut < whole.length; cut++) {
    t.throws(() => decodeSingle(whole.subarray(0, cut)), { instanceOf: DerError }, `prefix of ${cut} bytes`);
  }
});

test('decoder rejects trailing bytes after the element', (t) => {
  t.throws(() => decodeSingle(bytes('04 01 00 00')), { instanceOf: DerError, message: /trailing/ });
  t.throws(() => decodeSingle(Buffer.concat([integer(1n), integer(2n)])), { instanceOf: DerError, message: /trailing/ });
  // readNode itself reads one element and says where the next one starts.
  const { node, next } = readNode(bytes('02 01 01 02 01 02'));
  t.is(hex(node.raw), '020101');
  t.is(next, 3);
});

test('decoder rejects length fields longer than 4 octets and multi-byte tags', (t) => {
  t.throws(() => decodeSingle(bytes('04 85 00 00 00 00 01 00')), { instanceOf: DerError, message: /too large/ });
  t.throws(() => decodeSingle(bytes('04 88 00 00 00 00 00 00 00 01 00')), { instanceOf: DerError, message: /too large/ });
  t.throws(() => decodeSingle(bytes('1f 81 00 00')), { instanceOf: DerError, message: /multi-byte/ });
});

test('children refuses primitive nodes and returns nested nodes in order', (t) => {
  t.throws(() => children(decodeSingle(integer(5n))), { instanceOf: DerError, message: /not constructed/ });
  const nested = decodeSingle(sequence(integer(1n), sequence(oid('2.5.29.17')), octetString(bytes('aa'))));
  const parts = children(nested);
  t.deepEqual(parts.map((part) => part.tag), [Tag.INTEGER, Tag.SEQUENCE, Tag.OCTET_STRING]);
  const inner = parts[1];
  if (!inner) return t.fail('missing inner sequence');
  t.is(decodeOid(children(inner)[0] ?? decodeSingle(nullValue())), '2.5.29.17');
});

test('what the encoder writes, the decoder reads back byte for byte', (t) => {
  const encoded = sequence(
    integer(BigInt('0x7fffffffffffffffffffffffffffffff')),
    setOf(sequence(oid('2.5.4.3'), utf8String('thermostat-0123456789ab'))),
    sequence(time(new Date('2030-01-01T00:00:00Z')), time(new Date('2060-01-01T00:00:00Z'))),
    tlv(0xa3, sequence(octetString(Buffer.alloc(300, 1)))),
  );
  const root = decodeSingle(encoded);
  t.is(Buffer.compare(root.raw, encoded), 0);
  const reassembled = sequence(...children(root).map((child) => child.raw));
  t.is(hex(reassembled), hex(encoded));
  // asn1js re-encodes what it parsed to the same bytes (our output is DER, not just BER).
  t.is(hex(Buffer.from(asn1(encoded).toBER(false))), hex(encoded));
});
