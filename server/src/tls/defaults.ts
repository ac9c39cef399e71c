import type { SecureContextOptions, TlsOptions } from 'node:tls';

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
