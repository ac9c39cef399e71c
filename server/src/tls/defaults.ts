import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { ResumptionOptions } from './ticket-keys.ts';

/** Key, certificate chain and the CAs client certificates may chain to, all PEM. */
export interface MutualTlsMaterial {
  readonly key: string;
  readonly cert: string;
  readonly clientCas: readonly string[];
}

/**
 * TLS settings shared by every fleetgate listener: TLS 1.2 and 1.3 only, forward-secret AEAD
 * suites only for TLS 1.2 (TLS 1.3 suites are all AEAD), server preference.
 */
export const TLS_SERVER_DEFAULTS: TlsOptions & SecureContextOptions = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
  ecdhCurve: 'X25519:P-256:P-384',
};

/**
 * Options of every mutual-TLS listener. A client certificate is requested but a missing or
 * untrusted one does not fail the handshake: each listener decides itself and answers in its
 * protocol (HTTP 401/403, CONNACK 5), which a device can act on; a handshake failure only looks
 * like a network error, and TLS 1.3 clients retry it for ever.
 */
export function mutualTlsServerOptions(material: MutualTlsMaterial, resumption?: ResumptionOptions): TlsOptions & SecureContextOptions & { noDelay: boolean } {
  return {
    ...TLS_SERVER_DEFAULTS,
    // Shared ticket keys (tls/ticket-keys.ts): without them each process has random ones and a
    // device resumes only on the process that issued its ticket.
    ...resumption,
    key: material.key,
    cert: material.cert,
    ca: [...material.clientCas],
    requestCert: true,
    rejectUnauthorized: false,
    // Nagle's algorithm costs ~40 ms per TLS 1.3 handshake.
    noDelay: true,
  };
}
