/**
 * How a certificate serial is written for people: openssl's form, the one `openssl x509 -noout
 * -serial` prints (upper-case hex, an even number of digits, so a leading zero nibble is kept:
 * `0A3F...`). The registry keys certificates by lower-case hex without leading zeros
 * ({@link serialKey}); that form stays in storage (the audit log's hash chain covers it) and in
 * the admin API's JSON, and every text an operator reads (the factory manifest, `fleetgate device
 * show`, `fleetgate audit`) shows this one. No imports: the admin commands load it.
 */

/** A serial in openssl's form, from a bigint or from hex in any case, with or without leading zeros. */
export function formatSerial(serial: bigint | string): string {
  const digits = (typeof serial === 'bigint' ? serial.toString(16) : serial.replace(/^0+(?=.)/, '')).toUpperCase();
  return digits.length % 2 === 0 ? digits : `0${digits}`;
}

/** The registry's key for a serial written either way (openssl's form, Node's `serialNumber`, the registry's own). */
export function serialKey(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, '');
}
