import { handleIssuance } from './issue-handler.ts';
import type { Route } from './types.ts';

/**
 * POST /simplereenroll (RFC 7030 §4.2.2), authenticated by the current operational certificate.
 * The identity must stay the same; a new key is allowed (and is what the SDK does).
 */
export const simplereenroll: Route = {
  method: 'POST',
  acquiresSlot: true,
  handle(request, response, context) {
    return handleIssuance(request, response, context, 'simplereenroll', (client, csr, options) => context.authority.reenroll(client, csr, options));
  },
};
