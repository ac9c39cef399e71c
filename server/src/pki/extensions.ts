import { createHash } from 'node:crypto';
import { boolean, explicit, implicitPrimitive, integer, namedBitString, octetString, oid, sequence } from './der.ts';
import { OID } from './oids.ts';

/** One encoded certificate extension. */
export type EncodedExtension = Buffer;

function extension(extnId: string, critical: boolean, value: Buffer): EncodedExtension {
  return critical ? sequence(oid(extnId), boolean(true), octetString(value)) : sequence(oid(extnId), octetString(value));
}

/** basicConstraints (RFC 5280 §4.2.1.9); always critical, as CA certificates require. */
export function basicConstraints(ca: boolean, pathLength?: number): EncodedExtension {
  const parts: Buffer[] = [];
  if (ca) parts.push(boolean(true));
  if (ca && pathLength !== undefined) parts.push(integer(BigInt(pathLength)));
  return extension(OID.basicConstraints, true, sequence(...parts));
}

/** KeyUsage bits (RFC 5280 §4.2.1.3). */
export const KeyUsageBit = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export type KeyUsageName = keyof typeof KeyUsageBit;

/** keyUsage, critical. */
export function keyUsage(usages: readonly KeyUsageName[]): EncodedExtension {
  return extension(OID.keyUsage, true, namedBitString(usages.map((usage) => KeyUsageBit[usage])));
}

/** extKeyUsage, non-critical. */
export function extendedKeyUsage(purposes: readonly string[]): EncodedExtension {
  return extension(OID.extKeyUsage, false, sequence(...purposes.map((purpose) => oid(purpose))));
}

/** A subjectAltName entry. */
export type GeneralName =
  | { readonly type: 'dns'; readonly value: string }
  | { readonly type: 'ip'; readonly value: string }
  | { readonly type: 'uri'; readonly value: string };

function encodeIp(address: string): Buffer {
  if (address.includes(':')) {
    const [head = '', tail = ''] = address.split('::');
    const headGroups = head ? head.split(':') : [];
    const tailGroups = address.includes('::') ? (tail ? tail.split(':') : []) : [];
    const groups = address.includes('::')
      ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
      : address.split(':');
    if (groups.length !== 8) throw new TypeError(`invalid IPv6 address ${address}`);
    const out = Buffer.alloc(16);
    groups.forEach((group, index) => out.writeUInt16BE(Number.parseInt(group || '0', 16), index * 2));
    return out;
  }
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((octet) => !Number.isInteger(octet) || octet < 0 || octet > 255)) {
    throw new TypeError(`invalid IPv4 address ${address}`);
  }
  return Buffer.from(octets);
}

/** Encodes one GeneralName (RFC 5280 §4.2.1.6). */
export function encodeGeneralName(name: GeneralName): Buffer {
  switch (name.type) {
    case 'dns':
      return implicitPrimitive(2, Buffer.from(name.value, 'latin1'));
    case 'uri':
      return implicitPrimitive(6, Buffer.from(name.value, 'latin1'));
    case 'ip':
      return implicitPrimitive(7, encodeIp(name.value));
  }
}

/** subjectAltName; critical when the subject name is empty (RFC 5280 §4.2.1.6). */
export function subjectAltName(names: readonly GeneralName[], critical = false): EncodedExtension {
  return extension(OID.subjectAltName, critical, sequence(...names.map(encodeGeneralName)));
}

/** Key identifier: SHA-1 of the subjectPublicKey BIT STRING value (RFC 5280 §4.2.1.2, method 1). */
export function keyIdentifier(subjectPublicKey: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKey).digest();
}

/** subjectKeyIdentifier, non-critical. */
export function subjectKeyIdentifier(identifier: Buffer): EncodedExtension {
  return extension(OID.subjectKeyIdentifier, false, octetString(identifier));
}

/** authorityKeyIdentifier with keyIdentifier only, non-critical. */
export function authorityKeyIdentifier(identifier: Buffer): EncodedExtension {
  return extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, identifier)));
}

/** cRLNumber (RFC 5280 §5.2.3). */
export function crlNumber(value: bigint): EncodedExtension {
  return extension(OID.crlNumber, false, integer(value));
}

/** The extensions wrapper of a TBSCertificate: [3] EXPLICIT SEQUENCE OF Extension. */
export function extensionsField(extensions: readonly EncodedExtension[]): Buffer {
  return explicit(3, sequence(...extensions));
}
