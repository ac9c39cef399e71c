/**
 * @fleetgate/device-sdk: what device firmware embeds to enroll with fleetgate and talk to it.
 */
export * from './protocol.ts';
export { createCsr, generateDeviceKeyPair, DEVICE_KEY_ALGORITHM, CsrError } from './csr.ts';
