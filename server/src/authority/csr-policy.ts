import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import type { EnrollmentPolicy } from '../config/config.ts';
import { CA_KEY_USAGE_BITS, parseCsr, verifyCsrSignature, type ParsedCsr } from '../pki/csr.ts';
import { PKI_ERRORS, PkiError } from '../pki/errors.ts';
import { commonNameCount, commonNameOf } from '../pki/names.ts';
import { OID, oidName } from '../pki/oids.ts';
import { EnrollmentError } from './errors.ts';

/** Parses the CSR and checks proof of possession; PKI errors become enrollment errors. */
export function parseAndVerifyCsr(der: Buffer): ParsedCsr {
  try {
    const csr = parseCsr(der);
    verifyCsrSignature(csr);
    return csr;
  } catch (error) {
    // Each CSR error of the PKI core names the enrollment code it becomes (PKI_ERRORS).
    if (error instanceof PkiError) {
      const enroll = PKI_ERRORS[error.code].enroll;
      if (enroll) throw new EnrollmentError(enroll, error.message, { cause: error });
    }
    throw error;
  }
}

/** The CSR must name exactly the device the credential authenticates (CN, and SAN if any). */
export function checkCsrIdentity(csr: ParsedCsr, deviceId: string): void {
  const commonName = commonNameOf(csr.subject);
  if (commonNameCount(csr.subject) !== 1 || commonName !== deviceId) {
    throw new EnrollmentError(
      'ENROLL_IDENTITY_MISMATCH',
      `the CSR subject must have exactly one CN equal to the authenticated identity ${deviceId} (found ${commonName ?? 'none'})`,
    );
  }
  // Decoded once, by parseCsr: the identity and extension checks read the same summary.
  const requested = csr.requested;
  const foreignUri = requested.sanUris.find((uri) => uri !== deviceIdentityUri(deviceId));
  if (foreignUri || requested.sanDnsNames.length > 0 || requested.sanOtherTags.length > 0) {
    throw new EnrollmentError(
      'ENROLL_IDENTITY_MISMATCH',
      `the CSR subjectAltName may only carry ${deviceIdentityUri(deviceId)}${foreignUri ? ` (found ${foreignUri})` : ''}`,
    );
  }
}

/**
 * Requested extensions are never copied; the profile decides. Requests that ask for more than a
 * device certificate can be (a CA, a server, code signing) are refused rather than silently
 * trimmed, so a misconfigured device learns about it.
 */
export function checkRequestedExtensions(csr: ParsedCsr): void {
  const requested = csr.requested;
  if (requested.ca === true) {
    throw new EnrollmentError('ENROLL_EXTENSION_REFUSED', 'the CSR asks for basicConstraints cA:true; device certificates are never CAs');
  }
  if (requested.keyUsage?.some((bit) => CA_KEY_USAGE_BITS.includes(bit))) {
    throw new EnrollmentError('ENROLL_EXTENSION_REFUSED', 'the CSR asks for keyUsage keyCertSign or cRLSign; device certificates are never CAs');
  }
  const extra = requested.extendedKeyUsages.filter((purpose) => purpose !== OID.clientAuth);
  if (extra.length > 0) {
    throw new EnrollmentError(
      'ENROLL_EXTENSION_REFUSED',
      `the CSR asks for extended key usages ${extra.map(oidName).join(', ')}; only clientAuth is issued`,
    );
  }
}

/** Key algorithm and size policy (ECDSA P-256 by default). */
export function checkKeyPolicy(csr: ParsedCsr, policy: EnrollmentPolicy): void {
  const { kind, bits } = csr.key;
  if (kind === 'rsa') {
    if (!policy.keyKinds.includes('rsa')) {
      throw new EnrollmentError('ENROLL_KEY_POLICY', `RSA-${bits} key refused: this server accepts ${policy.keyKinds.join(', ')}`);
    }
    if (bits < policy.rsaMinBits) {
      throw new EnrollmentError('ENROLL_KEY_POLICY', `RSA-${bits} key refused: at least ${policy.rsaMinBits} bits are required`);
    }
    return;
  }
  if (!policy.keyKinds.includes(kind)) {
    throw new EnrollmentError('ENROLL_KEY_POLICY', `${kind} key refused: this server accepts ${policy.keyKinds.join(', ')}`);
  }
}

/** The whole CSR check in the pipeline's order: parse, verify, identity, extensions, key. */
export function validateCsr(der: Buffer, deviceId: string, policy: EnrollmentPolicy): ParsedCsr {
  const csr = parseAndVerifyCsr(der);
  checkCsrIdentity(csr, deviceId);
  checkRequestedExtensions(csr);
  checkKeyPolicy(csr, policy);
  return csr;
}
