/**
 * Seeded mutation fuzzing of the parsers that read untrusted bytes: the DER reader, the CSR parser,
 * the certs-only PKCS#7 reader, the admin JSON reader and the trust registration rules. Properties:
 * - only the module's coded error class ever comes out (DerError, PkiError, SdkError, AdminError,
 *   OperatorAuthorityError);
 * - no call takes long (a hang shows as a slow call, or as AVA's timeout);
 * - whatever is accepted re-encodes to the same bytes;
 * - differential: a sample of the mutated, re-signed CSRs fleetgate accepts must pass
 *   `openssl req -verify` and parse with pkijs; PKCS#7 answers fleetgate accepts parse with pkijs
 *   to the same certificates.
 *
 * A few seconds in `npm test`; FLEETGATE_FUZZ_SECONDS=<per target> for longer runs, and
 * FLEETGATE_FUZZ_SEED=<seed> replays a failure (the seed is in every failure message).
 */
import test, { type ExecutionContext } from 'ava';
import * as asn1js from 'asn1js';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { ServerResponse, type IncomingMessage } from 'node:http';
import * as pkijs from 'pkijs';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { children, decodeSingle, DerError, type DerNode } from '../device-sdk/src/der-reader.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { parseCertsOnly } from '../device-sdk/src/pkcs7.ts';
import { AdminError } from '../server/src/admin/errors.ts';
import { readJson } from '../server/src/admin/http.ts';
import { OperatorAuthorityError } from '../server/src/authority/errors.ts';
import { validateTrust } from '../server/src/authority/trust-registration.ts';
import { parseCsr, verifyCsrSignature } from '../server/src/pki/csr.ts';
import { bitString, boolean, integer, nullValue, oid, sequence, tlv } from '../server/src/pki/der.ts';
import { PkiError } from '../server/src/pki/errors.ts';
import { OID } from '../server/src/pki/oids.ts';
import { toPem } from '../server/src/pki/pem.ts';
import { certsOnly } from '../server/src/pki/pkcs7.ts';
import { extension, forgeCsr, wrapSigned } from './helpers/csr-forge.ts';
import { makeDataDir } from './helpers/fleet.ts';
import { forBudget, fuzzSeconds, fuzzSeed, mutate, Rng } from './helpers/fuzz.ts';
import { opensslCsr } from './helpers/openssl.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { readFile } from 'node:fs/promises';

const SECONDS = fuzzSeconds(1);
/** Slowest acceptable single call: generous for a loaded 2-core machine, far below a hang. */
const SLOW_CALL_MS = 2000;

/** Re-encodes a decoded tree with the definite, minimal form; strict DER must round-trip. */
function reencode(node: DerNode): Buffer {
  if (!(node.tag & 0x20)) return tlv(node.tag, node.content);
  return tlv(node.tag, Buffer.concat(children(node).map(reencode)));
}

/** Decodes a whole tree; returns it, or the DerError. */
function decodeTree(input: Buffer): DerNode {
  const root = decodeSingle(input);
  const walk = (node: DerNode, depth: number): void => {
    if (depth > 64) throw new DerError('too deep');
    if (node.tag & 0x20) for (const child of children(node)) walk(child, depth + 1);
  };
  walk(root, 0);
  return root;
}

interface Campaign {
  readonly t: ExecutionContext;
  readonly rng: Rng;
  readonly name: string;
}

function campaign(t: ExecutionContext, name: string): Campaign {
  const seed = fuzzSeed();
  t.log(`${name}: seed ${seed} (FLEETGATE_FUZZ_SEED=${seed} replays it), ${SECONDS} s`);
  return { t, rng: new Rng(seed), name };
}

/** Runs one call and fails the test on a foreign error or a slow call. */
function probe<T>(c: Campaign, iteration: number, input: Buffer | string, allowed: abstract new (...args: never[]) => Error, call: () => T): T | undefined {
  const started = performance.now();
  let result: T | undefined;
  try {
    result = call();
  } catch (error) {
    if (!(error instanceof allowed)) {
      c.t.fail(`${c.name} seed ${c.rng.seed} iteration ${iteration}: ${String(error)} for ${hexOf(input)}`);
      throw error;
    }
  }
  const elapsed = performance.now() - started;
  if (elapsed > SLOW_CALL_MS) c.t.fail(`${c.name} seed ${c.rng.seed} iteration ${iteration}: ${elapsed.toFixed(0)} ms for ${hexOf(input)}`);
  return result;
}

const hexOf = (input: Buffer | string): string => (typeof input === 'string' ? JSON.stringify(input.slice(0, 400)) : input.subarray(0, 400).toString('hex'));

// ---------------------------------------------------------------------------------------------
// Corpus

const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
const ed25519 = generateKeyPairSync('ed25519').privateKey;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

/** CSRs whose key we hold (so a mutated info can be re-signed), including the review's cases. */
function signedCorpus(): Array<{ der: Buffer; key: KeyObject }> {
  const point = Buffer.from(p256.export({ format: 'jwk' }).x ?? '', 'base64url');
  const ekus = extension(OID.extKeyUsage, sequence(oid(OID.clientAuth)));
  const san = extension(OID.subjectAltName, sequence(tlv(0x86, Buffer.from('urn:fleetgate:device:d-1'))));
  return [
    { der: forgeCsr({ privateKey: p256, commonName: 'd-1', extensions: [ekus, san] }), key: p256 },
    { der: forgeCsr({ privateKey: p384, commonName: 'd-1' }), key: p384 },
    { der: forgeCsr({ privateKey: ed25519, commonName: 'd-1' }), key: ed25519 },
    { der: forgeCsr({ privateKey: rsa, commonName: 'd-1', extensions: [ekus] }), key: rsa },
    // The review's cases, refused today; mutations around them stay interesting.
    { der: forgeCsr({ privateKey: p256, commonName: 'd-1', spki: sequence(sequence(oid(OID.ecPublicKey), oid(OID.prime256v1)), bitString(Buffer.concat([Buffer.from([4]), point, point])), nullValue()) }), key: p256 },
    { der: forgeCsr({ privateKey: p256, commonName: 'd-1', signatureAlgorithm: sequence(oid(OID.ecdsaWithSha256), nullValue()) }), key: p256 },
    { der: forgeCsr({ privateKey: p256, commonName: 'd-1', extensions: [extension(OID.basicConstraints, sequence(boolean(true)), true), extension(OID.basicConstraints, sequence())] }), key: p256 },
    { der: forgeCsr({ privateKey: p256, commonName: 'd-1', outerExtra: [integer(0n)] }), key: p256 },
  ];
}

function infoOf(der: Buffer): Buffer | undefined {
  try {
    return children(decodeSingle(der))[0]?.raw;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

test('fuzz: the DER reader throws only DerError, never hangs, and what it accepts re-encodes to the same bytes', async (t) => {
  const c = campaign(t, 'der');
  const corpus = [...signedCorpus().map(({ der }) => der), Buffer.from(await createCsr('d-1', await generateDeviceKeyPair()))];
  let accepted = 0;
  const iterations = forBudget(SECONDS, 200, (iteration) => {
    let input = c.rng.pick(corpus);
    for (let rounds = 1 + c.rng.int(3); rounds > 0; rounds--) input = mutate(c.rng, input);
    const tree = probe(c, iteration, input, DerError, () => decodeTree(input));
    if (tree) {
      accepted++;
      if (!reencode(tree).equals(input)) t.fail(`der seed ${c.rng.seed} iteration ${iteration}: accepted input does not re-encode: ${hexOf(input)}`);
    }
  });
  t.log(`der: ${iterations} inputs, ${accepted} accepted`);
  t.pass();
});

test('fuzz: the CSR parser throws only PkiError; accepted CSRs re-encode to the same bytes and pass openssl req -verify and pkijs', async (t) => {
  const c = campaign(t, 'csr');
  const dir = await tempDir(t, 'fleetgate-fuzz-');
  const signed = signedCorpus();
  const plain = [
    Buffer.from(await createCsr('d-1', await generateDeviceKeyPair())),
    (await opensslCsr(dir, { subject: '/CN=d-1', addext: ['subjectAltName=URI:urn:fleetgate:device:d-1', 'extendedKeyUsage=clientAuth', 'keyUsage=critical,digitalSignature'] })).der,
  ];
  const acceptedSigned: Buffer[] = [];
  let accepted = 0;
  const iterations = forBudget(SECONDS, 150, (iteration) => {
    let input: Buffer;
    if (c.rng.next() < 0.5) {
      // Mutate the signed part and sign again, so the parser's strictness (not the signature) decides.
      const { der, key } = c.rng.pick(signed);
      let info = infoOf(der) ?? der;
      for (let rounds = 1 + c.rng.int(2); rounds > 0; rounds--) info = mutate(c.rng, info, 8192);
      input = wrapSigned(info, key);
    } else {
      input = c.rng.pick([...plain, ...signed.map(({ der }) => der)]);
      for (let rounds = 1 + c.rng.int(3); rounds > 0; rounds--) input = mutate(c.rng, input);
    }
    const csr = probe(c, iteration, input, PkiError, () => {
      const parsed = parseCsr(input);
      verifyCsrSignature(parsed);
      return parsed;
    });
    if (!csr) return;
    accepted++;
    let strict: boolean;
    try {
      strict = reencode(decodeTree(input)).equals(input);
    } catch (error) {
      t.fail(`csr seed ${c.rng.seed} iteration ${iteration}: accepted CSR is not strict DER throughout (${String(error)}): ${hexOf(input)}`);
      return;
    }
    if (!strict || !input.includes(csr.subjectPublicKeyInfo) || !input.includes(csr.info)) {
      t.fail(`csr seed ${c.rng.seed} iteration ${iteration}: accepted CSR does not re-encode: ${hexOf(input)}`);
    }
    if (acceptedSigned.length < 500) acceptedSigned.push(input);
  });
  t.log(`csr: ${iterations} inputs, ${accepted} accepted`);
  t.true(accepted > 0, 'some mutations are still valid CSRs (the corpus is alive)');

  // Differential: a sample of what fleetgate accepted must be accepted by openssl and pkijs.
  const sampleSize = Math.min(acceptedSigned.length, Math.max(6, Math.round(SECONDS * 6)));
  for (let i = 0; i < sampleSize; i++) {
    const der = acceptedSigned[c.rng.int(acceptedSigned.length)] as Buffer;
    const verified = await run('openssl', ['req', '-inform', 'DER', '-verify', '-noout'], { input: der });
    t.is(verified.code, 0, `csr seed ${c.rng.seed}: openssl refused what fleetgate accepted: ${verified.stderr} ${hexOf(der)}`);
    t.notThrows(() => pkijs.CertificationRequest.fromBER(new Uint8Array(der)), `csr seed ${c.rng.seed}: pkijs cannot parse ${hexOf(der)}`);
  }
});

test('fuzz: the certs-only PKCS#7 reader throws only SdkError; what it accepts re-encodes and pkijs reads the same certificates', async (t) => {
  const c = campaign(t, 'pkcs7');
  const data = await makeDataDir(t);
  const certificates = await Promise.all(
    [data.layout.rootCert, data.layout.authorityCert('issuing'), data.layout.authorityCert('factory')].map(async (path) => {
      const pem = await readFile(path, 'utf8');
      return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    }),
  );
  const [first] = certificates as [Buffer, ...Buffer[]];
  // The review's case: a [0] that declares only the certificate's 4-byte header.
  const overrun = sequence(oid(OID.pkcs7SignedData), tlv(0xa0, sequence(integer(1n), tlv(0x31, Buffer.alloc(0)), sequence(oid(OID.pkcs7Data)), Buffer.from([0xa0, 0x04]), first, tlv(0x31, Buffer.alloc(0)))));
  const corpus = [certsOnly(certificates.slice(0, 2)), certsOnly(certificates), certsOnly(certificates.slice(1, 2)), overrun];
  let accepted = 0;
  let compared = 0;
  const iterations = forBudget(SECONDS, 150, (iteration) => {
    let input = c.rng.pick(corpus);
    for (let rounds = 1 + c.rng.int(3); rounds > 0; rounds--) input = mutate(c.rng, input);
    const body = input.toString('base64');
    const out = probe(c, iteration, input, SdkError, () => parseCertsOnly(body));
    if (!out) return;
    accepted++;
    if (!reencode(decodeTree(input)).equals(input)) t.fail(`pkcs7 seed ${c.rng.seed} iteration ${iteration}: accepted answer does not re-encode: ${hexOf(input)}`);
    // Differential on the container: when pkijs reads each certificate on its own (certificate
    // contents are OpenSSL's and pkijs' business, not this reader's), it must read the whole
    // answer and find the same certificates.
    const pkijsReadsEach = out.every((der) => {
      try {
        pkijs.Certificate.fromBER(new Uint8Array(der));
        return true;
      } catch {
        return false;
      }
    });
    if (pkijsReadsEach && compared < 50) {
      compared++;
      let theirs: string[] = [];
      try {
        const contentInfo = pkijs.ContentInfo.fromBER(new Uint8Array(input));
        const signedData = new pkijs.SignedData({ schema: contentInfo.content });
        // Serial numbers, not re-serialized bytes: pkijs re-encodes what it read (a non-minimal OID
        // arc inside a certificate comes back minimal), which is not this reader's concern.
        theirs = (signedData.certificates ?? []).map((certificate) => ('serialNumber' in certificate ? Buffer.from(certificate.serialNumber.valueBlock.valueHexView).toString('hex') : 'other'));
      } catch (error) {
        t.fail(`pkcs7 seed ${c.rng.seed} iteration ${iteration}: pkijs refused what fleetgate accepted (${String(error)}): ${input.toString('hex')}`);
        return;
      }
      const ours = out.map((der) => Buffer.from(pkijs.Certificate.fromBER(new Uint8Array(der)).serialNumber.valueBlock.valueHexView).toString('hex'));
      t.deepEqual(theirs, ours, `pkcs7 seed ${c.rng.seed} iteration ${iteration}`);
    }
  });
  t.log(`pkcs7: ${iterations} inputs, ${accepted} accepted`);
  t.pass();
});

test('fuzz: the admin JSON reader throws only AdminError, the trust registration rules only OperatorAuthorityError', async (t) => {
  const c = campaign(t, 'admin');
  const data = await makeDataDir(t);
  const rootPem = await readFile(data.layout.rootCert, 'utf8');
  const rootDer = Buffer.from(rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const values = (): unknown => {
    switch (c.rng.int(9)) {
      case 0:
        return rootPem;
      case 1:
        return toPem('CERTIFICATE', mutate(c.rng, rootDer));
      case 2:
        return mutate(c.rng, Buffer.from(rootPem)).toString('latin1');
      case 3:
        return '-----BEGIN CERTIFICATE-----'.repeat(1 + c.rng.int(2000));
      case 4:
        return c.rng.int(1000) - 500;
      case 5:
        return [c.rng.pick(['d-1', 'not an id', '', 'x'.repeat(300)]), c.rng.int(3)];
      case 6:
        return { nested: c.rng.pick([null, true, 'x']) };
      case 7:
        return c.rng.pick([null, true, false, undefined]);
      default:
        return c.rng.bytes(c.rng.int(40)).toString('latin1');
    }
  };
  const pickOr = (fixed: readonly unknown[]): unknown => (c.rng.next() < 0.6 ? c.rng.pick(fixed) : values());
  const bodies: Array<Record<string, unknown>> = [];
  const iterations = forBudget(SECONDS / 2, 150, (iteration) => {
    const body: Record<string, unknown> = {
      name: pickOr(['acme', 'fleetgate-factory', 'A', 'acme-2']),
      model: pickOr(['thermostat', 'camera', 'Bad Model']),
      caPem: pickOr([rootPem]),
      allowList: pickOr([undefined, ['d-1', 'd-2'], [], ['d-1', 'd-1']]),
    };
    bodies.push(body);
    if (bodies.length > 50) bodies.shift();
    probe(c, iteration, JSON.stringify(body).slice(0, 400), OperatorAuthorityError, () => validateTrust(body, 'operator:fuzz'));
  });
  // readJson over random and mutated JSON bytes.
  const jsonCorpus = bodies.map((body) => Buffer.from(JSON.stringify(body) ?? '{}'));
  let reads = 0;
  const deadline = performance.now() + (SECONDS / 2) * 1000;
  while (reads < 100 || performance.now() < deadline) {
    const input = mutate(c.rng, c.rng.pick(jsonCorpus));
    const started = performance.now();
    try {
      // A request as the admin server hands it over: JSON declared, the body in one chunk.
      const request = Object.assign(Readable.from([input]), { headers: { 'content-type': 'application/json', 'content-length': String(input.length) } });
      await readJson(request as unknown as IncomingMessage, new ServerResponse(request as unknown as IncomingMessage));
    } catch (error) {
      if (!(error instanceof AdminError)) t.fail(`admin seed ${c.rng.seed} read ${reads}: ${String(error)} for ${hexOf(input)}`);
    }
    if (performance.now() - started > SLOW_CALL_MS) t.fail(`admin seed ${c.rng.seed} read ${reads}: slow`);
    reads++;
  }
  t.log(`admin: ${iterations} trust bodies, ${reads} JSON bodies`);
  t.pass();
});

// Keep asn1js in the import list honest: pkijs reads through it, and a broken install shows here.
test('fuzz harness: asn1js is the parser pkijs uses for the differential checks', (t) => {
  t.is(asn1js.fromBER(new Uint8Array(sequence(nullValue()))).offset, 4);
});
