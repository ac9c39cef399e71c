import type { KeyObject } from 'node:crypto';
import { nullValue, oid, sequence } from './der.ts';
import { OID } from './oids.ts';

/** Key kinds the CA can make and the enrollment policy can name. */
export type KeyKind = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'ed25519' | 'rsa';

/** What a public key is, as far as policy cares. */
export interface KeyDescription {
  readonly kind: KeyKind;
  /** Key size in bits (curve size for EC, modulus for RSA, 256 for Ed25519). */
  readonly bits: number;
}

/** Describes a Node public or private key. Unknown kinds return undefined. */
export function describeKey(key: KeyObject): KeyDescription | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return { kind: 'ec-p256', bits: 256 };
      if (details.namedCurve === 'secp384r1') return { kind: 'ec-p384', bits: 384 };
      if (details.namedCurve === 'secp521r1') return { kind: 'ec-p521', bits: 521 };
      return undefined;
    case 'ed25519':
      return { kind: 'ed25519', bits: 256 };
    case 'rsa':
      return { kind: 'rsa', bits: details.modulusLength ?? 0 };
    default:
      return undefined;
  }
}

/** A signature algorithm: its OID, its AlgorithmIdentifier encoding and Node's digest name. */
export interface SignatureAlgorithm {
  readonly oid: string;
  /** Digest for `crypto.sign`/`crypto.verify`; null for Ed25519 (the digest is built in). */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** AlgorithmIdentifier DER. ECDSA and EdDSA omit parameters; RSA carries NULL (RFC 5754 §3). */
  readonly der: Buffer;
}

function algorithm(dotted: string, hash: SignatureAlgorithm['hash'], withNull: boolean): SignatureAlgorithm {
  return { oid: dotted, hash, der: withNull ? sequence(oid(dotted), nullValue()) : sequence(oid(dotted)) };
}

/** The signature algorithms fleetgate accepts on CSRs and uses when signing. */
export const SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map(
  [
    algorithm(OID.ecdsaWithSha256, 'sha256', false),
    algorithm(OID.ecdsaWithSha384, 'sha384', false),
    algorithm(OID.ecdsaWithSha512, 'sha512', false),
    algorithm(OID.ed25519, null, false),
    algorithm(OID.sha256WithRsa, 'sha256', true),
    algorithm(OID.sha384WithRsa, 'sha384', true),
    algorithm(OID.sha512WithRsa, 'sha512', true),
  ].map((entry) => [entry.oid, entry]),
);

/**
 * The algorithm a CA key signs with: the digest matches the key strength (SHA-256 for P-256,
 * SHA-384 for P-384), never a library default.
 */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const description = describeKey(key);
  const pick = (dotted: string): SignatureAlgorithm => SIGNATURE_ALGORITHMS.get(dotted) as SignatureAlgorithm;
  switch (description?.kind) {
    case 'ec-p256':
      return pick(OID.ecdsaWithSha256);
    case 'ec-p384':
      return pick(OID.ecdsaWithSha384);
    case 'ec-p521':
      return pick(OID.ecdsaWithSha512);
    case 'ed25519':
      return pick(OID.ed25519);
    case 'rsa':
      return pick((description.bits ?? 0) >= 3072 ? OID.sha384WithRsa : OID.sha256WithRsa);
    default:
      throw new TypeError(`unsupported signing key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
}

/** Which public key kinds a signature algorithm may be used with. */
export function algorithmMatchesKey(algorithmOid: string, key: KeyDescription): boolean {
  switch (algorithmOid) {
    case OID.ecdsaWithSha256:
    case OID.ecdsaWithSha384:
    case OID.ecdsaWithSha512:
      return key.kind.startsWith('ec-');
    case OID.ed25519:
      return key.kind === 'ed25519';
    case OID.sha256WithRsa:
    case OID.sha384WithRsa:
    case OID.sha512WithRsa:
      return key.kind === 'rsa';
    default:
      return false;
  }
}
