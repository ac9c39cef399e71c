import { X509Certificate } from 'node:crypto';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { fromPemAll } from '../pki/pem.ts';
import type { TrustRecord } from '../registry/types.ts';
import { OperatorAuthorityError } from './errors.ts';
import { isFactoryDeviceId, NAMESPACE_PATTERN } from './identity.ts';

/*
 * The rules of a trusted manufacturer CA (issue #8, issue #13): what a registration must hold,
 * and when two trusts would collide. The operator authority applies them; provisioners.ts turns a
 * stored trust into a provisioner.
 */

const TRUST_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** The built-in trust of fleetgate's own factory CA; not a name operators can take. */
export const FACTORY_TRUST = 'fleetgate-factory';
const MAX_ALLOW_LIST = 1_000_000;
/**
 * Bounds on `caPem`: a manufacturer chain is a few certificates of a few KB. The PEM parser is
 * linear and refuses more than {@link MAX_CA_PEM_BYTES}; the certificate count bounds the X.509
 * parsing that follows.
 */
const MAX_CA_PEM_BYTES = 64 * 1024;
const MAX_CA_CERTIFICATES = 8;

/** Whether a string has the syntax of a trust name (lower-case letters, digits, dashes; at most 32). */
export function isTrustName(name: string): boolean {
  return TRUST_NAME.test(name);
}

/**
 * A trust registration as an operator sent it (a decoded JSON body and the name from the path).
 * Every field is checked by {@link validateTrust}, its type included, so every refusal of a
 * registration is made in one place and in one order, whatever the front end.
 */
export interface TrustRegistration {
  readonly name?: unknown;
  readonly model?: unknown;
  readonly caPem?: unknown;
  readonly namespace?: unknown;
  readonly allowList?: unknown;
}

/** Whether two namespaces share ids (one is a prefix of the other). */
export function namespacesOverlap(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

/** Checks a trust's scope: a namespace, an allow-list or both, none of it in fleetgate's factory id form. */
function validateScope(namespace: unknown, allowList: unknown): { namespace?: string; allowList?: string[] } {
  if (namespace === undefined && allowList === undefined) {
    throw new OperatorAuthorityError(
      'OPERATOR_TRUST_SCOPE_REQUIRED',
      'a trust needs an id namespace ("namespace": "acme.") or an allow-list ("allowList": [...]), or both: without one, a manufacturer could enroll devices under any id',
    );
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace))) {
    throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'namespace must be a device-id prefix of 2 to 48 characters (lower-case letters, digits, ".", "_", "-") ending with ".", "_" or "-", e.g. "acme."');
  }
  let list: string[] | undefined;
  if (allowList !== undefined) {
    if (!Array.isArray(allowList) || allowList.length === 0 || allowList.length > MAX_ALLOW_LIST || allowList.some((id) => typeof id !== 'string' || !isDeviceId(id))) {
      throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', `allowList must be a list of 1 to ${MAX_ALLOW_LIST} device ids`);
    }
    list = [...new Set(allowList as string[])];
    const reserved = list.filter(isFactoryDeviceId);
    if (reserved.length > 0) {
      throw new OperatorAuthorityError(
        'OPERATOR_TRUST_INVALID',
        `allowList holds ${reserved.length} id${reserved.length > 1 ? 's' : ''} in the form of fleetgate factory ids (<model>-<12 hex>, e.g. ${reserved[0]}), which only the fleetgate factory CA may vouch for`,
      );
    }
    const outside = typeof namespace === 'string' ? list.filter((id) => !id.startsWith(namespace)) : [];
    if (outside.length > 0) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', `allowList holds ${outside.length} id${outside.length > 1 ? 's' : ''} outside the namespace ${String(namespace)} (e.g. ${outside[0]})`);
  }
  return { ...(typeof namespace === 'string' ? { namespace } : {}), ...(list ? { allowList: list } : {}) };
}

/**
 * Validates a trust registration: a current CA certificate with its chain up to a self-signed
 * root, a model, and a scope (an id namespace, an allow-list or both; issue #8). Returns the
 * record to store, the chain re-encoded and the CA's SHA-256 fingerprint taken; throws
 * {@link OperatorAuthorityError} `OPERATOR_TRUST_INVALID` or `OPERATOR_TRUST_SCOPE_REQUIRED`.
 */
export function validateTrust(registration: TrustRegistration, actor: string, now = new Date()): TrustRecord {
  const { name, model, caPem } = registration;
  if (typeof name !== 'string' || !TRUST_NAME.test(name) || name === FACTORY_TRUST) {
    throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'name must be lower-case letters, digits and dashes (and not fleetgate-factory)');
  }
  if (typeof model !== 'string' || !MODEL_PATTERN.test(model)) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'model must be a model name');
  if (typeof caPem !== 'string') throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'caPem must hold the manufacturer CA certificate (PEM)');
  let blocks: Buffer[];
  try {
    blocks = fromPemAll(caPem, 'CERTIFICATE', { maxBytes: MAX_CA_PEM_BYTES });
  } catch (error) {
    throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', `caPem must be a PEM text of at most ${MAX_CA_PEM_BYTES} bytes (a CA and its chain)`, { cause: error });
  }
  if (blocks.length === 0) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'caPem holds no PEM certificate');
  if (blocks.length > MAX_CA_CERTIFICATES) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', `caPem holds ${blocks.length} certificates; a CA and its chain have at most ${MAX_CA_CERTIFICATES}`);
  let certificates: X509Certificate[];
  try {
    certificates = blocks.map((der) => new X509Certificate(der));
  } catch (error) {
    throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'caPem holds a certificate that cannot be parsed', { cause: error });
  }
  const [ca] = certificates as [X509Certificate, ...X509Certificate[]];
  if (!ca.ca) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'the first certificate of caPem is not a CA certificate (basicConstraints cA)');
  if (now < new Date(ca.validFrom) || now > new Date(ca.validTo)) throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', 'the CA certificate is not currently valid');
  // The TLS layer needs the chain up to a self-signed root to verify devices' certificates.
  const top = certificates.at(-1) as X509Certificate;
  if (!top.checkIssued(top)) {
    throw new OperatorAuthorityError('OPERATOR_TRUST_INVALID', "caPem must include the manufacturer CA's chain up to its self-signed root");
  }
  const scope = validateScope(registration.namespace, registration.allowList);
  return { name, model, caPem: certificates.map((certificate) => certificate.toString()).join(''), fingerprint: ca.fingerprint256, ...scope, createdAt: now.toISOString(), actor };
}

/** Whether a registration would change nothing of the stored trust (who and when aside). */
export function sameTrust(a: TrustRecord, b: TrustRecord): boolean {
  const list = (trust: TrustRecord): string => JSON.stringify(trust.allowList === undefined ? null : [...trust.allowList].sort());
  return a.model === b.model && a.caPem === b.caPem && a.namespace === b.namespace && list(a) === list(b);
}

