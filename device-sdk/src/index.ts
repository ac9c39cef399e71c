/**
 * @fleetgate/device-sdk: what device firmware embeds to enroll with fleetgate and talk to it.
 */
export * from './protocol.ts';
export { createCsr, generateDeviceKeyPair, DEVICE_KEY_ALGORITHM, CsrError } from './csr.ts';
export { EstClient, type EstClientOptions, type EnrollmentResult, type TlsCredential } from './est-client.ts';
export { SdkError, type SdkErrorCode } from './errors.ts';
export { parseCertsOnly } from './pkcs7.ts';
