import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import { oid, sequence, setOf } from '../../pki/der.ts';
import { OID } from '../../pki/oids.ts';
import { sendBase64 } from '../http-io.ts';
import type { Route } from './types.ts';

/**
 * The CSR attributes fleetgate asks for (RFC 7030 §4.5.2): an EC key on P-256, signed with
 * ECDSA SHA-256. Built once: the answer does not change while the server runs.
 */
const CSR_ATTRIBUTES = sequence(oid(OID.ecdsaWithSha256), sequence(oid(OID.ecPublicKey), setOf(oid(OID.prime256v1))));

/** GET /csrattrs (RFC 7030 §4.5). */
export const csrattrs: Route = {
  method: 'GET',
  async handle(_request, response) {
    sendBase64(response, MEDIA_TYPES.csrattrs, CSR_ATTRIBUTES);
  },
};
