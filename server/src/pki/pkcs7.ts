import { explicit, integer, oid, sequence, tlv, Tag } from './der.ts';
import { OID } from './oids.ts';

/**
 * A degenerate CMS SignedData carrying certificates only ("certs-only"), as EST returns them
 * (RFC 7030 §4.1.3, §4.2.3; RFC 5652 §5.1: version 1, no digest algorithms, no signers).
 * Certificates are kept in the order given, leaf first, because simple clients take the first.
 */
export function certsOnly(certificates: readonly Buffer[]): Buffer {
  const signedData = sequence(
    integer(1n),
    tlv(Tag.SET, Buffer.alloc(0)), // digestAlgorithms
    sequence(oid(OID.pkcs7Data)), // encapContentInfo without content
    tlv(0xa0, Buffer.concat(certificates)), // certificates [0] IMPLICIT CertificateSet
    tlv(Tag.SET, Buffer.alloc(0)), // signerInfos
  );
  return sequence(oid(OID.pkcs7SignedData), explicit(0, signedData));
}
