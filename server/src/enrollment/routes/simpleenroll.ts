import { handleIssuance } from './issue-handler.ts';
import type { Route } from './types.ts';

/** POST /simpleenroll (RFC 7030 §4.2.1), authenticated by a factory bootstrap certificate. */
export const simpleenroll: Route = {
  method: 'POST',
  acquiresSlot: true,
  handle(request, response, context) {
    return handleIssuance(request, response, context, 'simpleenroll', (client, csr, options) => context.authority.enroll(client, csr, options));
  },
};
