import { X509Certificate } from 'node:crypto';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { fromPemAll } from '../../pki/pem.ts';
import type { TrustRecord } from '../../registry/types.ts';
import { AdminError } from '../errors.ts';
import { readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';

const TRUST_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** The built-in trust of fleetgate's own factory CA; not a name operators can take. */
export const FACTORY_TRUST = 'fleetgate-factory';
const MAX_ALLOW_LIST = 1_000_000;
/** A manufacturer CA chain is a few KiB; the PEM parser refuses anything over this. */
const MAX_TRUST_PEM_BYTES = 256 * 1024;

/** Validates a trust registration: a current CA certificate, a model, an optional allow-list. */
export function validateTrust(body: Record<string, unknown>, actor: string, now = new Date()): TrustRecord {
  const { name, model, caPem, allowList } = body;
  if (typeof name !== 'string' || !TRUST_NAME.test(name) || name === FACTORY_TRUST) {
    throw new AdminError('ADMIN_TRUST_INVALID', 'name must be lower-case letters, digits and dashes (and not fleetgate-factory)');
  }
  if (typeof model !== 'string' || !MODEL_PATTERN.test(model)) throw new AdminError('ADMIN_TRUST_INVALID', 'model must be a model name');
  if (typeof caPem !== 'string') throw new AdminError('ADMIN_TRUST_INVALID', 'caPem must hold the manufacturer CA certificate (PEM)');
  let blocks: Buffer[];
  try {
    blocks = fromPemAll(caPem, 'CERTIFICATE', { maxBytes: MAX_TRUST_PEM_BYTES });
  } catch (error) {
    throw new AdminError('ADMIN_TRUST_INVALID', `caPem is not a PEM text of at most ${MAX_TRUST_PEM_BYTES} bytes`, { cause: error });
  }
  if (blocks.length === 0) throw new AdminError('ADMIN_TRUST_INVALID', 'caPem holds no PEM certificate');
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
  let list: string[] | undefined;
  if (allowList !== undefined) {
    if (!Array.isArray(allowList) || allowList.length > MAX_ALLOW_LIST || allowList.some((id) => typeof id !== 'string' || !isDeviceId(id))) {
      throw new AdminError('ADMIN_TRUST_INVALID', `allowList must be a list of at most ${MAX_ALLOW_LIST} device ids`);
    }
    list = [...new Set(allowList as string[])];
  }
  return { name, model, caPem: certificates.map((certificate) => certificate.toString()).join(''), fingerprint: ca.fingerprint256, ...(list ? { allowList: list } : {}), createdAt: now.toISOString(), actor };
}

/** GET /v1/trusts */
export const listTrusts: AdminRoute = {
  method: 'GET',
  path: '/v1/trusts',
  async handle({ response }, context) {
    const trusts = await context.registry.listTrusts();
    sendJson(response, 200, { trusts: trusts.map(({ allowList, ...rest }) => ({ ...rest, allowListSize: allowList?.length ?? null })) });
  },
};

/** PUT /v1/trusts/:name { model, caPem, allowList? } — trust a manufacturer CA for bootstrap. */
export const putTrust: AdminRoute = {
  method: 'PUT',
  path: '/v1/trusts/:name',
  async handle(request, context) {
    const body = await readJson(request.request);
    const trust = validateTrust({ ...body, name: request.params.name }, `operator:${request.operator}`);
    await context.registry.putTrust(trust);
    context.logger.info({ trust: trust.name, model: trust.model, operator: request.operator }, 'manufacturer CA trusted');
    const { allowList, ...rest } = trust;
    sendJson(request.response, 200, { trust: { ...rest, allowListSize: allowList?.length ?? null } });
  },
};

/** DELETE /v1/trusts/:name */
export const deleteTrust: AdminRoute = {
  method: 'DELETE',
  path: '/v1/trusts/:name',
  async handle(request, context) {
    const name = request.params.name ?? '';
    if (!(await context.registry.deleteTrust(name, `operator:${request.operator}`))) throw new AdminError('ADMIN_TRUST_NOT_FOUND', `no trust named ${name}`);
    sendJson(request.response, 200, { removed: name });
  },
};
