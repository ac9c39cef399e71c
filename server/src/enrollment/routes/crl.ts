import { HEADER } from '../http-io.ts';
import type { Route } from './types.ts';

/** GET /crl: the current CRL of the device-issuing CA, DER (application/pkix-crl, RFC 5280 §5). */
export const crl: Route = {
  method: 'GET',
  async handle(_request, response, context) {
    const der = await context.crl.crl();
    response.writeHead(200, { [HEADER.contentType]: 'application/pkix-crl', [HEADER.contentLength]: der.length, [HEADER.cacheControl]: 'max-age=60' });
    response.end(der);
  },
};
