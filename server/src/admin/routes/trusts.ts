import { isTrustName } from '../../authority/trust-registration.ts';
import { AdminError } from '../errors.ts';
import { onlyFields, readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';
import { trustView, type TrustAnswer, type TrustList, type TrustRemoved } from '../wire.ts';

/** Fields of a trust registration (the name is in the path). */
const TRUST_FIELDS = ['model', 'caPem', 'namespace', 'allowList'] as const;

/** GET /v1/trusts */
export const listTrusts: AdminRoute = {
  method: 'GET',
  path: '/v1/trusts',
  async handle({ response }, context) {
    const trusts = await context.store.listTrusts();
    sendJson(response, 200, { trusts: trusts.map(trustView) } satisfies TrustList);
  },
};

/**
 * PUT /v1/trusts/:name?replace=true { model, caPem, namespace?, allowList? } — trust a
 * manufacturer CA for bootstrap. The rules (exact registrations, one trust per CA, no
 * overlapping namespaces) are the operator authority's (`OperatorAuthority.addTrust`); a
 * registration identical to the stored one answers `changed: false`.
 */
export const putTrust: AdminRoute = {
  method: 'PUT',
  path: '/v1/trusts/:name',
  query: ['replace'],
  async handle(request, context) {
    const replaceParameter = request.query.get('replace');
    if (replaceParameter !== null && replaceParameter !== 'true' && replaceParameter !== 'false') throw new AdminError('ADMIN_BAD_REQUEST', 'replace must be true or false');
    const body = await readJson(request.request, request.response);
    onlyFields(body, TRUST_FIELDS);
    const outcome = await context.authority.addTrust({ ...body, name: request.params.name }, { operator: request.operator, replace: replaceParameter === 'true' });
    const answer: TrustAnswer = outcome.changed ? { trust: trustView(outcome.trust), changed: true, replaced: outcome.replaced } : { trust: trustView(outcome.trust), changed: false };
    sendJson(request.response, 200, answer);
  },
};

/** DELETE /v1/trusts/:name */
export const deleteTrust: AdminRoute = {
  method: 'DELETE',
  path: '/v1/trusts/:name',
  async handle(request, context) {
    const name = request.params.name ?? '';
    if (!isTrustName(name)) throw new AdminError('ADMIN_BAD_REQUEST', `"${name.slice(0, 64)}" is not a trust name`);
    onlyFields(await readJson(request.request, request.response), []);
    await context.authority.removeTrust(name, request.operator);
    sendJson(request.response, 200, { removed: name } satisfies TrustRemoved);
  },
};
