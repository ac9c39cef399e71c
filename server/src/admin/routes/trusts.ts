import { X509Certificate } from 'node:crypto';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { isFactoryDeviceId, NAMESPACE_PATTERN } from '../../authority/identity.ts';
import { fromPemAll } from '../../pki/pem.ts';
import type { TrustRecord } from '../../registry/types.ts';
import { AdminError } from '../errors.ts';
import { onlyFields, readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';

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
/** Fields of a trust registration (the name is in the path). */
const TRUST_FIELDS = ['model', 'caPem', 'namespace', 'allowList'] as const;

/** Whether two namespaces share ids (one is a prefix of the other). */
export function namespacesOverlap(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

/** Checks a trust's scope: a namespace, an allow-list or both, none of it in fleetgate's factory id form. */
function validateScope(namespace: unknown, allowList: unknown): { namespace?: string; allowList?: string[] } {
  if (namespace === undefined && allowList === undefined) {
    throw new AdminError(
      'ADMIN_TRUST_SCOPE_REQUIRED',
      'a trust needs an id namespace ("namespace": "acme.") or an allow-list ("allowList": [...]), or both: without one, a manufacturer could enroll devices under any id',
    );
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace))) {
    throw new AdminError('ADMIN_TRUST_INVALID', 'namespace must be a device-id prefix of 2 to 48 characters (lower-case letters, digits, ".", "_", "-") ending with ".", "_" or "-", e.g. "acme."');
  }
  let list: string[] | undefined;
  if (allowList !== undefined) {
    if (!Array.isArray(allowList) || allowList.length === 0 || allowList.length > MAX_ALLOW_LIST || allowList.some((id) => typeof id !== 'string' || !isDeviceId(id))) {
      throw new AdminError('ADMIN_TRUST_INVALID', `allowList must be a list of 1 to ${MAX_ALLOW_LIST} device ids`);
    }
    list = [...new Set(allowList as string[])];
    const reserved = list.filter(isFactoryDeviceId);
    if (reserved.length > 0) {
      throw new AdminError(
        'ADMIN_TRUST_INVALID',
        `allowList holds ${reserved.length} id${reserved.length > 1 ? 's' : ''} in the form of fleetgate factory ids (<model>-<12 hex>, e.g. ${reserved[0]}), which only the fleetgate factory CA may vouch for`,
      );
    }
    const outside = typeof namespace === 'string' ? list.filter((id) => !id.startsWith(namespace)) : [];
    if (outside.length > 0) throw new AdminError('ADMIN_TRUST_INVALID', `allowList holds ${outside.length} id${outside.length > 1 ? 's' : ''} outside the namespace ${String(namespace)} (e.g. ${outside[0]})`);
  }
  return { ...(typeof namespace === 'string' ? { namespace } : {}), ...(list ? { allowList: list } : {}) };
}

/**
 * Validates a trust registration: a current CA certificate, a model, and a scope (an id namespace,
 * an allow-list or both; issue #8). Unknown fields are refused by the route, not here.
 */
export function validateTrust(body: Record<string, unknown>, actor: string, now = new Date()): TrustRecord {
  const { name, model, caPem } = body;
  if (typeof name !== 'string' || !TRUST_NAME.test(name) || name === FACTORY_TRUST) {
    throw new AdminError('ADMIN_TRUST_INVALID', 'name must be lower-case letters, digits and dashes (and not fleetgate-factory)');
  }
  if (typeof model !== 'string' || !MODEL_PATTERN.test(model)) throw new AdminError('ADMIN_TRUST_INVALID', 'model must be a model name');
  if (typeof caPem !== 'string') throw new AdminError('ADMIN_TRUST_INVALID', 'caPem must hold the manufacturer CA certificate (PEM)');
  let blocks: Buffer[];
  try {
    blocks = fromPemAll(caPem, 'CERTIFICATE', { maxBytes: MAX_CA_PEM_BYTES });
  } catch (error) {
    throw new AdminError('ADMIN_TRUST_INVALID', `caPem must be a PEM text of at most ${MAX_CA_PEM_BYTES} bytes (a CA and its chain)`, { cause: error });
  }
  if (blocks.length === 0) throw new AdminError('ADMIN_TRUST_INVALID', 'caPem holds no PEM certificate');
  if (blocks.length > MAX_CA_CERTIFICATES) throw new AdminError('ADMIN_TRUST_INVALID', `caPem holds ${blocks.length} certificates; a CA and its chain have at most ${MAX_CA_CERTIFICATES}`);
  let certificates: X509Certificate[];
  try {
    certificates = blocks.map((der) => new X509Certificate(der));
  } catch (error) {
    throw new AdminError('ADMIN_TRUST_INVALID', 'caPem holds a certificate that cannot be parsed', { cause: error });
  }
  const [ca] = certificates as [X509Certificate, ...X509Certificate[]];
  if (!ca.ca) throw new AdminError('ADMIN_TRUST_INVALID', 'the first certificate of caPem is not a CA certificate (basicConstraints cA)');
  if (now < new Date(ca.validFrom) || now > new Date(ca.validTo)) throw new AdminError('ADMIN_TRUST_INVALID', 'the CA certificate is not currently valid');
  // The TLS layer needs the chain up to a self-signed root to verify devices' certificates.
  const top = certificates.at(-1) as X509Certificate;
  if (!top.checkIssued(top)) {
    throw new AdminError('ADMIN_TRUST_INVALID', "caPem must include the manufacturer CA's chain up to its self-signed root");
  }
  const scope = validateScope(body.namespace, body.allowList);
  return { name, model, caPem: certificates.map((certificate) => certificate.toString()).join(''), fingerprint: ca.fingerprint256, ...scope, createdAt: now.toISOString(), actor };
}

/** A trust as the API shows it: the allow-list by its size, the namespace `null` when there is none. */
function summary({ allowList, ...rest }: TrustRecord): Omit<TrustRecord, 'allowList' | 'namespace'> & { namespace: string | null; allowListSize: number | null } {
  return { ...rest, namespace: rest.namespace ?? null, allowListSize: allowList?.length ?? null };
}

/** GET /v1/trusts */
export const listTrusts: AdminRoute = {
  method: 'GET',
  path: '/v1/trusts',
  async handle({ response }, context) {
    const trusts = await context.registry.listTrusts();
    sendJson(response, 200, { trusts: trusts.map(summary) });
  },
};

/** Whether a registration would change nothing of the stored trust (who and when aside). */
function sameTrust(a: TrustRecord, b: TrustRecord): boolean {
  const list = (trust: TrustRecord): string => JSON.stringify(trust.allowList === undefined ? null : [...trust.allowList].sort());
  return a.model === b.model && a.caPem === b.caPem && a.namespace === b.namespace && list(a) === list(b);
}

/**
 * PUT /v1/trusts/:name?replace=true { model, caPem, namespace?, allowList? } — trust a
 * manufacturer CA for bootstrap. Exact: a CA trusted under another name is refused with that
 * name (a second trust of the same CA would never decide anything: the first one's model and
 * scope do); an existing name is changed only with `replace=true`; a registration identical to
 * the stored one is a no-op (`changed: false`, nothing audited).
 */
export const putTrust: AdminRoute = {
  method: 'PUT',
  path: '/v1/trusts/:name',
  query: ['replace'],
  async handle(request, context) {
    const replaceParameter = request.query.get('replace');
    if (replaceParameter !== null && replaceParameter !== 'true' && replaceParameter !== 'false') throw new AdminError('ADMIN_BAD_REQUEST', 'replace must be true or false');
    const replace = replaceParameter === 'true';
    const body = await readJson(request.request, request.response);
    onlyFields(body, TRUST_FIELDS);
    const trust = validateTrust({ ...body, name: request.params.name }, `operator:${request.operator}`);
    // Checked before the write, outside the registry's writer queue: two operators registering
    // the same CA or overlapping namespaces in the same instant could both pass; registrations are rare.
    const trusts = await context.registry.listTrusts();
    const sameCa = trusts.find((existing) => existing.name !== trust.name && existing.fingerprint === trust.fingerprint);
    if (sameCa) {
      throw new AdminError(
        'ADMIN_TRUST_EXISTS',
        `this CA (${trust.fingerprint.slice(0, 23)}...) is already trusted as ${sameCa.name} (model ${sameCa.model}): change that trust with name ${sameCa.name} and replace, or remove it first`,
      );
    }
    const current = trusts.find((existing) => existing.name === trust.name);
    if (current && sameTrust(current, trust)) {
      sendJson(request.response, 200, { trust: summary(current), changed: false });
      return;
    }
    if (current && !replace) {
      throw new AdminError('ADMIN_TRUST_EXISTS', `trust ${trust.name} exists (model ${current.model}, CA ${current.fingerprint.slice(0, 23)}...): replace it explicitly (replace=true, \`--replace\`) or choose another name`);
    }
    if (trust.namespace !== undefined) {
      // Two trusts sharing ids would let one manufacturer enroll first under the other's ids.
      const other = trusts.find((existing) => existing.name !== trust.name && existing.namespace !== undefined && namespacesOverlap(existing.namespace, trust.namespace as string));
      if (other) throw new AdminError('ADMIN_TRUST_CONFLICT', `namespace ${trust.namespace} overlaps the namespace ${String(other.namespace)} of trust ${other.name}`);
    }
    await context.registry.putTrust(trust);
    context.logger.info({ trust: trust.name, model: trust.model, namespace: trust.namespace, operator: request.operator, replaced: current !== undefined }, 'manufacturer CA trusted');
    sendJson(request.response, 200, { trust: summary(trust), changed: true, replaced: current !== undefined });
  },
};

/** DELETE /v1/trusts/:name */
export const deleteTrust: AdminRoute = {
  method: 'DELETE',
  path: '/v1/trusts/:name',
  async handle(request, context) {
    const name = request.params.name ?? '';
    if (!TRUST_NAME.test(name)) throw new AdminError('ADMIN_BAD_REQUEST', `"${name.slice(0, 64)}" is not a trust name`);
    onlyFields(await readJson(request.request, request.response), []);
    if (!(await context.registry.deleteTrust(name, `operator:${request.operator}`))) throw new AdminError('ADMIN_TRUST_NOT_FOUND', `no trust named ${name}`);
    sendJson(request.response, 200, { removed: name });
  },
};
