/**
 * @fleetgate/device-sdk: what device firmware embeds to enroll with fleetgate and talk to it.
 */
export * from './protocol.ts';
export { FleetDevice, type FleetDeviceOptions } from './fleet-device.ts';
export type { CertificateInfo, DeviceEndpoints, DeviceState, EndpointChange, FleetDeviceEvents } from './device-state.ts';
export { MemoryCredentialStore, type CredentialSlot, type CredentialStore, type StoredCredential } from './store.ts';
export { FileCredentialStore } from './file-store.ts';
export { SoftwareKeyProvider, DEVICE_KEY_ALGORITHM, type DeviceKey, type KeyProvider, type TlsKeyMaterial } from './keys.ts';
export { createCsr, generateDeviceKeyPair } from './csr.ts';
export { EstClient, type EstClientOptions, type EnrollmentResult, type TlsCredential } from './est-client.ts';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { renewalDelay, DEFAULT_RENEWAL, type RenewalOptions } from './renewal.ts';
export { systemClock, type Clock, type Random } from './clock.ts';
export { FleetgateError } from './fleetgate-error.ts';
export { SdkError, SDK_ERRORS, CONNACK_REFUSALS, type SdkErrorCode, type ConnackRefusalCode, type DeviceErrorCode } from './errors.ts';
export { parseCertsOnly } from './pkcs7.ts';
