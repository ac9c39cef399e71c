import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { algorithmMatchesKey, describeKey, SIGNATURE_ALGORITHMS, type KeyDescription } from './algorithms.ts';
import {
  decodeBitStringBytes,
  decodeBoolean,
  decodeInteger,
  decodeNamedBits,
  decodeOid,
  decodeSingle,
  DerError,
  expectChildren,
  expectCount,
  expectNull,
  expectTag,
  setOfChildren,
  Tag,
  type DerNode,
  checkTree,
} from './der.ts';
import { bitString, oid, sequence } from './der.ts';
import { PkiError } from './errors.ts';
import { decodeName, type DistinguishedName } from './names.ts';
import { OID, oidName } from './oids.ts';

/** One extension the requester asked for in its extensionRequest attribute (PKCS#9). */
export interface RequestedExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** extnValue content (the DER inside the OCTET STRING). */
  readonly value: Buffer;
}

/** What the requester asked for, decoded far enough for the policy to refuse it. */
export interface RequestedExtensionSummary {
  /** basicConstraints cA as requested, if the extension was present. */
  readonly ca: boolean | undefined;
  /** keyUsage bit numbers as requested (RFC 5280 §4.2.1.3), if the extension was present. */
  readonly keyUsage: readonly number[] | undefined;
  readonly extendedKeyUsages: readonly string[];
  readonly sanUris: readonly string[];
  readonly sanDnsNames: readonly string[];
  /** SAN entries of other types (email, IP, directory name ...), by context tag number. */
  readonly sanOtherTags: readonly number[];
}

/** A decoded PKCS#10 certification request (RFC 2986). */
export interface ParsedCsr {
  readonly der: Buffer;
  /** The CertificationRequestInfo bytes the signature covers. */
  readonly info: Buffer;
  readonly subject: DistinguishedName;
  /** SubjectPublicKeyInfo DER, re-encoded from the decoded key (and equal to the CSR's bytes). */
  readonly subjectPublicKeyInfo: Buffer;
  readonly publicKey: KeyObject;
  readonly key: KeyDescription;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly requestedExtensions: readonly RequestedExtension[];
  /** The requested extensions that policy looks at, decoded (strictly) at parse time. */
  readonly requested: RequestedExtensionSummary;
  /** Attribute types present (extensionRequest, challengePassword, ...). */
  readonly attributeTypes: readonly string[];
}

/** Upper bound on a CSR; anything bigger is not a device CSR (an RSA-4096 CSR is ~1.7 KB). */
export const MAX_CSR_BYTES = 8192;

function malformed(reason: string, cause?: unknown): PkiError {
  return new PkiError('PKI_CSR_MALFORMED', `the CSR is malformed: ${reason}`, { cause });
}

/**
 * Extensions (RFC 5280 §4.1): SEQUENCE SIZE (1..MAX) OF Extension { extnID, critical BOOLEAN
 * DEFAULT FALSE, extnValue OCTET STRING }. Strict DER: an explicit `critical FALSE` is a second
 * encoding of the default (X.690 §11.5) and refused; an extension may appear once (RFC 5280 §4.2),
 * so a `cA:true` followed by `cA:false` cannot hide behind "the last one wins"; every extnValue
 * must be exactly one DER element.
 */
function parseExtensions(sequenceNode: DerNode): RequestedExtension[] {
  const seen = new Set<string>();
  const list = expectChildren(sequenceNode, Tag.SEQUENCE, 'Extensions');
  if (list.length === 0) throw new DerError('Extensions: empty');
  return list.map((extension) => {
    const parts = expectCount(extension, Tag.SEQUENCE, 'Extension', 2, 3);
    const [idNode, second, third] = parts;
    const id = decodeOid(idNode as DerNode);
    if (seen.has(id)) throw new DerError(`extension ${oidName(id)} appears twice`);
    seen.add(id);
    let critical = false;
    let valueNode = second;
    if (parts.length === 3) {
      critical = decodeBoolean(second, 'critical');
      if (!critical) throw new DerError('critical FALSE is the default and must be omitted in DER');
      valueNode = third;
    }
    expectTag(valueNode, Tag.OCTET_STRING, 'extnValue');
    decodeSingle(valueNode.content);
    return { oid: id, critical, value: valueNode.content };
  });
}

/** Curves fleetgate can name (RFC 5480 §2.1.1.1); policy decides which it accepts. */
const EC_CURVES: Readonly<Record<string, { crv: string; size: number; description: KeyDescription }>> = {
  [OID.prime256v1]: { crv: 'P-256', size: 32, description: { kind: 'ec-p256', bits: 256 } },
  [OID.secp384r1]: { crv: 'P-384', size: 48, description: { kind: 'ec-p384', bits: 384 } },
  [OID.secp521r1]: { crv: 'P-521', size: 66, description: { kind: 'ec-p521', bits: 521 } },
};

/** A CSR public key, decoded and re-encoded. */
interface DecodedKey {
  readonly publicKey: KeyObject;
  readonly key: KeyDescription;
  /** The canonical SubjectPublicKeyInfo, byte-equal to the CSR's (checked). */
  readonly spki: Buffer;
}

/**
 * Decodes a SubjectPublicKeyInfo against an allow-list of exact shapes, then re-encodes it and
 * insists on getting the input bytes back, so the certificate never carries a key block that a
 * TLS stack cannot parse:
 * - id-ecPublicKey with a namedCurve OID (RFC 5480 §2.1.1: specifiedCurve and implicitCurve MUST
 *   NOT be used) and an uncompressed point (what Node and OpenSSL write);
 * - id-Ed25519 with absent parameters (RFC 8410 §3);
 * - rsaEncryption with NULL parameters (RFC 3279 §2.3.1).
 * Anything else is a key type fleetgate does not support (PKI_KEY_POLICY).
 */
function decodePublicKey(spkiNode: DerNode): DecodedKey {
  const [algorithm, bits] = expectCount(spkiNode, Tag.SEQUENCE, 'SubjectPublicKeyInfo', 2);
  const algorithmParts = expectCount(algorithm, Tag.SEQUENCE, 'SubjectPublicKeyInfo algorithm', 1, 2);
  const keyBits = decodeBitStringBytes(bits, 'subjectPublicKey');
  const algorithmOid = decodeOid(algorithmParts[0] as DerNode);
  const parameters = algorithmParts[1];
  let publicKey: KeyObject;
  let key: KeyDescription | undefined;
  let spki: Buffer | undefined;
  if (algorithmOid === OID.ecPublicKey) {
    if (parameters?.tag !== Tag.OID) throw malformed('EC keys must name their curve (RFC 5480 §2.1.1: no explicit parameters)');
    const curveOid = decodeOid(parameters);
    const curve = EC_CURVES[curveOid];
    if (!curve) throw new PkiError('PKI_KEY_POLICY', `EC curve ${oidName(curveOid)} is not supported`);
    if (keyBits.length !== 1 + 2 * curve.size || keyBits[0] !== 0x04) throw malformed('the EC point must be uncompressed and fit the curve');
    const jwk = { kty: 'EC', crv: curve.crv, x: keyBits.subarray(1, 1 + curve.size).toString('base64url'), y: keyBits.subarray(1 + curve.size).toString('base64url') };
    // JWK import skips OpenSSL 3's generic decoder: ~70 us instead of ~110 us per CSR. It also
    // checks that the point is on the curve.
    publicKey = decodeWith(() => createPublicKey({ key: jwk, format: 'jwk' }));
    key = curve.description;
    // What Node would export for this key (RFC 5480 §2), built here without a round trip
    // through OpenSSL: enrollment is the hot path.
    spki = sequence(sequence(oid(OID.ecPublicKey), oid(curveOid)), bitString(keyBits));
  } else if (algorithmOid === OID.ed25519 || algorithmOid === OID.rsaEncryption) {
    if (algorithmOid === OID.ed25519 && parameters) throw malformed('Ed25519 keys must have absent parameters (RFC 8410 §3)');
    if (algorithmOid === OID.rsaEncryption) expectNull(parameters, 'rsaEncryption parameters (RFC 3279 §2.3.1)');
    publicKey = decodeWith(() => createPublicKey({ key: spkiNode.raw, format: 'der', type: 'spki' }));
    key = describeKey(publicKey);
  } else {
    throw new PkiError('PKI_KEY_POLICY', `public key algorithm ${oidName(algorithmOid)} is not supported`);
  }
  if (!key) throw new PkiError('PKI_KEY_POLICY', `public key type ${publicKey.asymmetricKeyType ?? 'unknown'} is not supported`);
  // Re-encode and compare: the certificate gets exactly what Node (and so OpenSSL) would write.
  spki ??= publicKey.export({ type: 'spki', format: 'der' });
  if (!spki.equals(spkiNode.raw)) throw malformed('the public key is not in its canonical DER encoding');
  return { publicKey, key, spki };
}

function decodeWith(decode: () => KeyObject): KeyObject {
  try {
    return decode();
  } catch (error) {
    throw malformed('the public key cannot be decoded', error);
  }
}

/**
 * The attributes [0] IMPLICIT SET OF Attribute (RFC 2986 §4.1): in DER order, each type once,
 * each with a non-empty SET of values; extensionRequest (PKCS#9, RFC 2985 §5.4.2) with exactly
 * one value.
 */
function parseAttributes(attributesNode: DerNode): { types: string[]; extensions: RequestedExtension[] } {
  expectTag(attributesNode, 0xa0, 'attributes');
  const list = setOfChildren({ ...attributesNode, tag: Tag.SET }, 'attributes');
  const types: string[] = [];
  const extensions: RequestedExtension[] = [];
  for (const attribute of list) {
    const [typeNode, valuesNode] = expectCount(attribute, Tag.SEQUENCE, 'Attribute', 2);
    const type = decodeOid(typeNode as DerNode);
    if (types.includes(type)) throw new DerError(`attribute ${oidName(type)} appears twice`);
    types.push(type);
    const values = setOfChildren(valuesNode, 'attribute values');
    if (values.length === 0) throw new DerError(`attribute ${oidName(type)} has no value`);
    if (type === OID.extensionRequest) {
      if (values.length !== 1) throw new DerError('extensionRequest must have exactly one value');
      extensions.push(...parseExtensions(values[0] as DerNode));
    }
  }
  return { types, extensions };
}

/**
 * Parses a DER PKCS#10 request (RFC 2986 §4) strictly: exact element counts, the signature
 * AlgorithmIdentifier byte-equal to the one fleetgate would write (parameters absent for ECDSA
 * and Ed25519, RFC 5758 §3.2, RFC 8410 §3; NULL for RSA, RFC 4055 §5), the public key in its
 * canonical encoding, requested extensions decodable and unique. Refused, never trimmed: an input
 * that parses re-encodes to the same bytes. The signature is checked by {@link verifyCsrSignature}
 * and the contents by the enrollment policy.
 */
export function parseCsr(der: Buffer): ParsedCsr {
  if (der.length > MAX_CSR_BYTES) throw malformed(`larger than ${MAX_CSR_BYTES} bytes`);
  try {
    const root = decodeSingle(der);
    // Strict DER all the way down, also inside parts no rule here reads (the value of an unknown
    // attribute): what is accepted must re-encode to the same bytes (found by test/fuzz.test.ts).
    checkTree(root);
    const [infoNode, algorithmNode, signatureNode] = expectCount(root, Tag.SEQUENCE, 'CertificationRequest', 3);
    // attributes is required by RFC 2986; OpenSSL reads a request without it, and so do we.
    const [versionNode, subjectNode, spkiNode, attributesNode] = expectCount(infoNode, Tag.SEQUENCE, 'CertificationRequestInfo', 3, 4);
    if (decodeInteger(versionNode, 'version') !== 0n) throw new DerError('version must be 0 (v1)');
    const subject = decodeName(subjectNode as DerNode);
    const attributes = attributesNode ? parseAttributes(attributesNode) : { types: [], extensions: [] };
    const requested = summarizeExtensions(attributes.extensions);

    const [algorithmOidNode] = expectCount(algorithmNode, Tag.SEQUENCE, 'signatureAlgorithm', 1, 2);
    const signatureAlgorithm = decodeOid(algorithmOidNode as DerNode);
    const known = SIGNATURE_ALGORITHMS.get(signatureAlgorithm);
    if (known && !known.der.equals((algorithmNode as DerNode).raw)) {
      throw new DerError(`signatureAlgorithm ${oidName(signatureAlgorithm)} must have ${known.der.length > 2 + (algorithmOidNode as DerNode).raw.length ? 'NULL' : 'absent'} parameters`);
    }
    const signature = decodeBitStringBytes(signatureNode, 'signature');
    const { publicKey, key, spki } = decodePublicKey(spkiNode as DerNode);
    return {
      der,
      info: (infoNode as DerNode).raw,
      subject,
      subjectPublicKeyInfo: spki,
      publicKey,
      key,
      signatureAlgorithm,
      signature,
      requestedExtensions: attributes.extensions,
      requested,
      attributeTypes: attributes.types,
    };
  } catch (error) {
    if (error instanceof PkiError) throw error;
    throw malformed(error instanceof Error ? error.message : 'undecodable', error);
  }
}

/**
 * Proof of possession: the CSR must be signed by the key it carries (RFC 2986 §3, RFC 7030 §3.4).
 */
export function verifyCsrSignature(csr: ParsedCsr): void {
  const algorithm = SIGNATURE_ALGORITHMS.get(csr.signatureAlgorithm);
  if (!algorithm) {
    throw new PkiError('PKI_CSR_ALGORITHM', `signature algorithm ${oidName(csr.signatureAlgorithm)} is not accepted`);
  }
  if (!algorithmMatchesKey(csr.signatureAlgorithm, csr.key)) {
    throw new PkiError('PKI_CSR_ALGORITHM', `signature algorithm ${oidName(csr.signatureAlgorithm)} does not fit a ${csr.key.kind} key`);
  }
  let valid = false;
  try {
    valid = cryptoVerify(algorithm.hash, csr.info, csr.publicKey, csr.signature);
  } catch (error) {
    throw new PkiError('PKI_CSR_SIGNATURE', 'the CSR signature cannot be verified', { cause: error });
  }
  if (!valid) throw new PkiError('PKI_CSR_SIGNATURE', 'the CSR signature does not verify with the CSR public key');
}

/**
 * Decodes the requested extensions that policy looks at (strict DER); anything else is ignored,
 * never copied. Throws DerError on a malformed value.
 */
function summarizeExtensions(extensions: readonly RequestedExtension[]): RequestedExtensionSummary {
  let ca: boolean | undefined;
  let keyUsage: number[] | undefined;
  const extendedKeyUsages: string[] = [];
  const sanUris: string[] = [];
  const sanDnsNames: string[] = [];
  const sanOtherTags: number[] = [];
  for (const extension of extensions) {
    const value = decodeSingle(extension.value);
    if (extension.oid === OID.basicConstraints) {
      // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
      const parts = expectCount(value, Tag.SEQUENCE, 'basicConstraints', 0, 2);
      const [first, second] = parts;
      ca = first?.tag === Tag.BOOLEAN ? decodeBoolean(first, 'cA') : false;
      if (first?.tag === Tag.BOOLEAN && !ca) throw new DerError('basicConstraints cA FALSE is the default and must be omitted in DER');
      const pathLen = first?.tag === Tag.BOOLEAN ? second : first;
      if (pathLen && decodeInteger(pathLen, 'pathLenConstraint') < 0n) throw new DerError('negative pathLenConstraint');
      if (first?.tag === Tag.BOOLEAN ? parts.length > 2 : parts.length > 1) throw new DerError('basicConstraints: extra elements');
    } else if (extension.oid === OID.keyUsage) {
      keyUsage = decodeNamedBits(value, 'keyUsage');
    } else if (extension.oid === OID.extKeyUsage) {
      const purposes = expectChildren(value, Tag.SEQUENCE, 'extKeyUsage');
      if (purposes.length === 0) throw new DerError('extKeyUsage: empty');
      for (const purpose of purposes) extendedKeyUsages.push(decodeOid(purpose));
    } else if (extension.oid === OID.subjectAltName) {
      const names = expectChildren(value, Tag.SEQUENCE, 'subjectAltName');
      if (names.length === 0) throw new DerError('subjectAltName: empty');
      for (const name of names) {
        const tagNumber = name.tag & 0x1f;
        if (name.tag === 0x86) sanUris.push(name.content.toString('latin1'));
        else if (name.tag === 0x82) sanDnsNames.push(name.content.toString('latin1'));
        else sanOtherTags.push(tagNumber);
      }
    }
  }
  return { ca, keyUsage, extendedKeyUsages, sanUris, sanDnsNames, sanOtherTags };
}

/**
 * KeyUsage bits (RFC 5280 §4.2.1.3) a device certificate may never carry: keyCertSign (5) and
 * cRLSign (6) belong to CAs.
 */
export const CA_KEY_USAGE_BITS: readonly number[] = [5, 6];
