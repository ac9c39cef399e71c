import type { CredentialKind } from '../../registry/types.ts';
import { AdminError } from '../errors.ts';
import { onlyFields, optionalString, readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';
import { credentialView, type CredentialList } from '../wire.ts';

/** A serial (hex) or a name (lower-case letters, digits, dashes). */
const CREDENTIAL_REF = /^[a-z0-9][a-z0-9-]{0,63}$/i;

/** GET /v1/operators, GET /v1/services — the certificates on record, with their state. */
function listCredentials(kind: CredentialKind): AdminRoute {
  return {
    method: 'GET',
    path: `/v1/${kind}s`,
    async handle({ response }, context) {
      sendJson(response, 200, { credentials: (await context.store.listCredentials(kind)).map(credentialView) } satisfies CredentialList);
    },
  };
}

/**
 * POST /v1/operators/revoke, POST /v1/services/revoke { ref, force? } — revokes the certificate
 * with serial `ref`, or every valid one named `ref`. Takes effect at once: the admin API refuses
 * a revoked operator certificate from its next request on, the broker closes a revoked service's
 * sessions and refuses its reconnects (operator-identity.ts, broker/device-access.ts).
 */
function revokeCredentials(kind: CredentialKind): AdminRoute {
  return {
    method: 'POST',
    path: `/v1/${kind}s/revoke`,
    async handle(request, context) {
      const body = await readJson(request.request, request.response);
      onlyFields(body, kind === 'operator' ? ['ref', 'force'] : ['ref']);
      const ref = optionalString(body, 'ref', 64);
      if (ref === undefined || !CREDENTIAL_REF.test(ref)) throw new AdminError('ADMIN_BAD_REQUEST', `ref must be the serial (hex) or the name of an ${kind} certificate`);
      if (body.force !== undefined && typeof body.force !== 'boolean') throw new AdminError('ADMIN_BAD_REQUEST', 'force must be true or false');
      const revoked = await context.authority.revokeCredentials(kind, ref, { operator: request.operator, force: body.force === true });
      sendJson(request.response, 200, { credentials: revoked.map(credentialView) } satisfies CredentialList);
    },
  };
}

export const listOperators = listCredentials('operator');
export const listServices = listCredentials('service');
export const revokeOperators = revokeCredentials('operator');
export const revokeServices = revokeCredentials('service');
