/**
 * Builds PKCS#10 requests piece by piece, correctly signed, so a test can put one wrong thing in
 * an otherwise valid CSR (an extra element, junk parameters, a duplicate extension) and know that
 * only the parser's strictness refuses it, never the signature.
 */
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { bitString, boolean, integer, nullValue, octetString, oid, sequence, setOf, tlv, utf8String } from '../../server/src/pki/der.ts';
import { OID } from '../../server/src/pki/oids.ts';

/** What goes into a forged request; every field has a sane default. */
export interface ForgeOptions {
  readonly privateKey: KeyObject;
  readonly commonName: string;
  /** SubjectPublicKeyInfo DER (default: the key's own, as Node writes it). */
  readonly spki?: Buffer;
  /** Extensions (each an encoded Extension SEQUENCE) for an extensionRequest attribute. */
  readonly extensions?: readonly Buffer[];
  /** Raw attributes content (replaces the extensionRequest built from `extensions`). */
  readonly attributes?: Buffer;
  /** Signature AlgorithmIdentifier DER (default: the right one for the key, RFC 5758 / 4055). */
  readonly signatureAlgorithm?: Buffer;
  /** Elements appended to CertificationRequestInfo. */
  readonly infoExtra?: readonly Buffer[];
  /** Elements appended to CertificationRequest. */
  readonly outerExtra?: readonly Buffer[];
  /** Replaces the encoded version INTEGER. */
  readonly version?: Buffer;
}

/** Digest and AlgorithmIdentifier a key signs a CSR with. */
export function defaultAlgorithm(key: KeyObject): { hash: string | null; der: Buffer } {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return { hash: null, der: sequence(oid(OID.ed25519)) };
  if (type === 'rsa') return { hash: 'sha256', der: sequence(oid(OID.sha256WithRsa), nullValue()) };
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'secp384r1') return { hash: 'sha384', der: sequence(oid(OID.ecdsaWithSha384)) };
  return { hash: 'sha256', der: sequence(oid(OID.ecdsaWithSha256)) };
}

/** One Extension SEQUENCE. */
export function extension(dotted: string, value: Buffer, critical?: boolean): Buffer {
  return critical === undefined ? sequence(oid(dotted), octetString(value)) : sequence(oid(dotted), boolean(critical), octetString(value));
}

/** CertificationRequestInfo DER. */
export function forgeInfo(options: ForgeOptions): Buffer {
  const spki = options.spki ?? createPublicKey(options.privateKey).export({ type: 'spki', format: 'der' });
  const subject = sequence(setOf(sequence(oid(OID.commonName), utf8String(options.commonName))));
  const attributes =
    options.attributes ??
    (options.extensions && options.extensions.length > 0
      ? sequence(oid(OID.extensionRequest), setOf(sequence(...options.extensions)))
      : Buffer.alloc(0));
  return sequence(options.version ?? integer(0n), subject, spki, tlv(0xa0, attributes), ...(options.infoExtra ?? []));
}

/** A whole DER CSR, signed over the (possibly odd) info with the private key. */
export function forgeCsr(options: ForgeOptions): Buffer {
  const info = forgeInfo(options);
  return wrapSigned(info, options.privateKey, options.signatureAlgorithm, options.outerExtra);
}

/** Signs `info` and wraps it into a CertificationRequest. */
export function wrapSigned(info: Buffer, privateKey: KeyObject, algorithm?: Buffer, outerExtra: readonly Buffer[] = []): Buffer {
  const { hash, der } = defaultAlgorithm(privateKey);
  const signature = sign(hash, info, privateKey);
  return sequence(info, algorithm ?? der, bitString(signature), ...outerExtra);
}
