/** PEM armour (RFC 7468). */
import { PkiError } from './errors.ts';

/**
 * Default upper bound on a PEM text, in bytes (UTF-16 code units, which bound the bytes from
 * above for the ASCII that PEM is). A CA chain of a few certificates is a few KiB; callers that
 * read PEM from an untrusted source (an admin trust upload) pass their own `maxBytes`.
 */
export const MAX_PEM_BYTES = 1024 * 1024;

/** Options of {@link fromPemAll}. */
export interface PemOptions {
  /** Refuse a text longer than this (default {@link MAX_PEM_BYTES}). */
  readonly maxBytes?: number;
}

/** Wraps DER in a PEM block with 64-character lines. */
export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const NOT_BASE64 = /[^A-Za-z0-9+/=\s]/;

function malformed(message: string): PkiError {
  return new PkiError('PKI_PEM_MALFORMED', message);
}

/**
 * All DER blocks with the given label in a PEM text, in order. Blocks with other labels are
 * skipped, as is text between blocks (RFC 7468 §2 explanatory text).
 *
 * Linear time: each marker is found with one forward `indexOf` from where the last search stopped
 * (a lazy regular expression rescanned the rest of the text for every BEGIN marker, so 512 KiB of
 * BEGIN markers took seconds). A BEGIN without its END, a body that is not base64 (another BEGIN
 * inside it, say) or a text over `maxBytes` is refused with `PKI_PEM_MALFORMED`, never trimmed.
 */
export function fromPemAll(pem: string, label: string, options: PemOptions = {}): Buffer[] {
  const maxBytes = options.maxBytes ?? MAX_PEM_BYTES;
  if (pem.length > maxBytes) throw malformed(`the PEM text is larger than ${maxBytes} bytes`);
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const out: Buffer[] = [];
  for (let from = pem.indexOf(begin); from !== -1; ) {
    const bodyStart = from + begin.length;
    const bodyEnd = pem.indexOf(end, bodyStart);
    if (bodyEnd === -1) throw malformed(`a BEGIN ${label} marker has no END marker`);
    const body = pem.slice(bodyStart, bodyEnd);
    // Stops at the first stray character (a nested marker's dash, say) before any decoding work.
    if (NOT_BASE64.test(body)) throw malformed(`a ${label} block holds something other than base64`);
    const base64 = body.replace(/\s+/g, '');
    const der = Buffer.from(base64, 'base64');
    // RFC 7468 §3 strict base64: Node's decoder skips what it does not understand, so only a text
    // that re-encodes to itself (alphabet, padding, zero trailing bits) is taken.
    if (der.toString('base64') !== base64) throw malformed(`a ${label} block holds something other than base64`);
    if (der.length === 0) throw malformed(`an empty ${label} block`);
    out.push(der);
    from = pem.indexOf(begin, bodyEnd + end.length);
  }
  return out;
}

/** The first DER block with the given label; throws `PKI_PEM_MALFORMED` when there is none. */
export function fromPem(pem: string, label: string, options: PemOptions = {}): Buffer {
  const [first] = fromPemAll(pem, label, options);
  if (!first) throw malformed(`no PEM block labelled ${label}`);
  return first;
}
