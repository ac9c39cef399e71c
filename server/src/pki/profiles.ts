import { OID } from './oids.ts';
import {
  authorityKeyIdentifier,
  basicConstraints,
  extendedKeyUsage,
  keyUsage,
  subjectAltName,
  subjectKeyIdentifier,
  type EncodedExtension,
  type GeneralName,
} from './extensions.ts';

/**
 * Certificate profiles: the complete set of extensions each kind of certificate carries. The
 * requester never contributes an extension; a profile decides all of them (RFC 5280 §4.2).
 */
export type Profile =
  | { readonly kind: 'root-ca' }
  | { readonly kind: 'intermediate-ca' }
  | { readonly kind: 'tls-server'; readonly names: readonly GeneralName[] }
  | { readonly kind: 'operator'; readonly operatorName: string }
  | { readonly kind: 'service'; readonly serviceName: string }
  | { readonly kind: 'device'; readonly deviceIdentityUri: string };

/** Key identifiers of the subject and of the issuer. */
export interface KeyIdentifiers {
  readonly subject: Buffer;
  readonly authority: Buffer;
}

/** URI form of a backend service identity (an MQTT client that is not a device). */
export function serviceIdentityUri(name: string): string {
  return `urn:fleetgate:service:${name}`;
}

/** URI form of an operator identity, carried in operator certificates. */
export function operatorIdentityUri(name: string): string {
  return `urn:fleetgate:operator:${name}`;
}

/** The extensions of a certificate issued under `profile`. */
export function profileExtensions(profile: Profile, keyIds: KeyIdentifiers): EncodedExtension[] {
  const identifiers = [subjectKeyIdentifier(keyIds.subject), authorityKeyIdentifier(keyIds.authority)];
  switch (profile.kind) {
    case 'root-ca':
      return [basicConstraints(true, 1), keyUsage(['keyCertSign', 'cRLSign']), ...identifiers];
    case 'intermediate-ca':
      return [basicConstraints(true, 0), keyUsage(['keyCertSign', 'cRLSign']), ...identifiers];
    case 'tls-server':
      return [
        basicConstraints(false),
        keyUsage(['digitalSignature']),
        extendedKeyUsage([OID.serverAuth]),
        subjectAltName(profile.names),
        ...identifiers,
      ];
    case 'operator':
      return [
        basicConstraints(false),
        keyUsage(['digitalSignature']),
        extendedKeyUsage([OID.clientAuth]),
        subjectAltName([{ type: 'uri', value: operatorIdentityUri(profile.operatorName) }]),
        ...identifiers,
      ];
    case 'service':
      return [
        basicConstraints(false),
        keyUsage(['digitalSignature']),
        extendedKeyUsage([OID.clientAuth]),
        subjectAltName([{ type: 'uri', value: serviceIdentityUri(profile.serviceName) }]),
        ...identifiers,
      ];
    case 'device':
      return [
        basicConstraints(false),
        keyUsage(['digitalSignature']),
        extendedKeyUsage([OID.clientAuth]),
        subjectAltName([{ type: 'uri', value: profile.deviceIdentityUri }]),
        ...identifiers,
      ];
  }
}
