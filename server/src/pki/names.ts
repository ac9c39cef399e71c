import { OID } from './oids.ts';
import { DerError, children, decodeOid, decodeString, expectCount, expectTag, setOfChildren, oid, printableString, sequence, setOf, Tag, utf8String, type DerNode } from './der.ts';

/** One relative distinguished name attribute, in the order it appears. */
export interface NameAttribute {
  readonly type: string;
  readonly value: string;
}

/** A distinguished name with a convenient view of the attributes fleetgate reads. */
export interface DistinguishedName {
  readonly attributes: readonly NameAttribute[];
  /** The DER encoding, reused verbatim as an issuer name (RFC 5280 §4.1.2.4 byte-equality). */
  readonly der: Buffer;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * Builds a Name from attributes, one attribute per RDN. countryName and serialNumber are
 * PrintableString as RFC 5280 requires; everything else UTF8String.
 */
export function encodeName(attributes: readonly NameAttribute[]): DistinguishedName {
  const rdns = attributes.map(({ type, value }) => {
    const printable = (type === OID.countryName || type === OID.serialNumber) && PRINTABLE.test(value);
    const encodedValue = printable ? printableString(value) : utf8String(value);
    return setOf(sequence(oid(type), encodedValue));
  });
  return { attributes, der: sequence(...rdns) };
}

/** Decodes a Name. Multi-valued RDNs are flattened in order. */
export function decodeName(node: DerNode): DistinguishedName {
  expectTag(node, Tag.SEQUENCE, 'Name');
  const attributes: NameAttribute[] = [];
  for (const rdn of children(node)) {
    // RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue (RFC 5280 §4.1.2.4)
    const atvs = setOfChildren(rdn, 'RelativeDistinguishedName');
    if (atvs.length === 0) throw new DerError('RelativeDistinguishedName: empty');
    for (const atv of atvs) {
      const [type, value] = expectCount(atv, Tag.SEQUENCE, 'AttributeTypeAndValue', 2);
      attributes.push({ type: decodeOid(type as DerNode), value: decodeString(value as DerNode) });
    }
  }
  return { attributes, der: node.raw };
}

/** The last commonName of a name (the most specific one), if any. */
export function commonNameOf(name: DistinguishedName): string | undefined {
  let found: string | undefined;
  for (const attribute of name.attributes) if (attribute.type === OID.commonName) found = attribute.value;
  return found;
}

/** How many commonName attributes a name has (a CSR with two CNs is ambiguous and refused). */
export function commonNameCount(name: DistinguishedName): number {
  return name.attributes.filter((attribute) => attribute.type === OID.commonName).length;
}

/** The short names OpenSSL and Node print for the attribute types fleetgate writes. */
const SHORT_NAMES: Readonly<Record<string, string>> = {
  [OID.commonName]: 'CN',
  [OID.serialNumber]: 'serialNumber',
  [OID.countryName]: 'C',
  [OID.organizationName]: 'O',
  [OID.organizationalUnitName]: 'OU',
};

/** A name for people and logs, in its encoded order: `O=acme, CN=acme factory CA`. */
export function formatName(name: DistinguishedName): string {
  return name.attributes.map(({ type, value }) => `${SHORT_NAMES[type] ?? type}=${value}`).join(', ');
}
