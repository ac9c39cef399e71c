import type { AdminRoute } from './types.ts';

/** GET /v1/crl — the current CRL of the device-issuing CA (DER, application/pkix-crl). */
export const currentCrl: AdminRoute = {
  method: 'GET',
  path: '/v1/crl',
  async handle({ response }, context) {
    const der = await context.crl.crl();
    response.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': der.length });
    response.end(der);
  },
};
