import type { Route } from './types.ts';

/** GET /crl: the current CRL of the device-issuing CA, DER (application/pkix-crl, RFC 5280 §5). */
export const crl: Route = {
  method: 'GET',
  async handle(_request, response, context) {
    const der = await context.crl.crl();
    response.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': der.length, 'cache-control': 'max-age=60' });
    response.end(der);
  },
};
