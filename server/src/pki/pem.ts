/** PEM armour (RFC 7468). */

/** Wraps DER in a PEM block with 64-character lines. */
export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** All DER blocks with the given label in a PEM text, in order. */
export function fromPemAll(pem: string, label: string): Buffer[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...pem.matchAll(pattern)].map((match) => Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64'));
}

/** The first DER block with the given label; throws when there is none. */
export function fromPem(pem: string, label: string): Buffer {
  const [first] = fromPemAll(pem, label);
  if (!first) throw new TypeError(`no PEM block labelled ${label}`);
  return first;
}
