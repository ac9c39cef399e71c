import type { Random } from './clock.ts';

/** When to renew, as a share of the certificate's lifetime. */
export interface RenewalOptions {
  /** Renew at this share of the lifetime (default 2/3). */
  readonly at: number;
  /** Minus a random share up to this much of the lifetime (default 0.1), so a fleet enrolled together does not renew together. */
  readonly jitter: number;
}

export const DEFAULT_RENEWAL: RenewalOptions = { at: 2 / 3, jitter: 0.1 };

/** Milliseconds from `now` until the renewal of a certificate valid from `notBefore` to `notAfter` (0 if due). */
export function renewalDelay(validity: { notBefore: number; notAfter: number }, now: number, options: RenewalOptions = DEFAULT_RENEWAL, random: Random = Math.random): number {
  const lifetime = Math.max(0, validity.notAfter - validity.notBefore);
  const renewAt = validity.notBefore + lifetime * options.at - lifetime * options.jitter * random();
  return Math.max(0, Math.floor(renewAt - now));
}
