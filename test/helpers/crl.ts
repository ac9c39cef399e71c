/**
 * Whether a DER CRL holds the serial number `serialHex` (as the registry writes it: hex, no
 * leading zeros), found as its DER INTEGER encoding. A quick check; tests still read the CRL
 * with openssl for their assertions.
 */
export function crlListsSerial(der: Buffer, serialHex: string): boolean {
  const bytes = Buffer.from(serialHex.length % 2 === 1 ? `0${serialHex}` : serialHex, 'hex');
  // A positive INTEGER whose top bit is set gets a leading 0x00 (X.690 §8.3.2).
  const content = (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return der.includes(Buffer.concat([Buffer.from([0x02, content.length]), content]));
}
