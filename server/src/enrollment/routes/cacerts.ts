import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import { certsOnly } from '../../pki/pkcs7.ts';
import { sendBase64 } from '../http-io.ts';
import type { Route } from './types.ts';

/**
 * GET /cacerts (RFC 7030 §4.1): the CA certificates, no client authentication required
 * (§4.1.1). Clients bootstrap trust out of band: fleetgate devices pin root.crt.
 */
export const cacerts: Route = {
  method: 'GET',
  async handle(_request, response, context) {
    sendBase64(response, MEDIA_TYPES.certsOnly, certsOnly(context.caCertificates));
  },
};
