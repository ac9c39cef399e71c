import { randomBytes } from 'node:crypto';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { isFactoryDeviceId, NAMESPACE_PATTERN } from '../authority/identity.ts';

/**
 * A readable, unique device id: `<model>-<12 hex digits>` (48 random bits: a collision is
 * unlikely below millions of devices per model, and the registry refuses a clash anyway).
 * That form is reserved for the fleetgate factory CA (authority/identity.ts).
 */
export function newDeviceId(model: string): string {
  if (!MODEL_PATTERN.test(model)) throw new TypeError(`invalid model name ${model}`);
  const id = `${model}-${randomBytes(6).toString('hex')}`;
  // Generator and reservation must never drift apart.
  if (!isDeviceId(id) || !isFactoryDeviceId(id)) throw new TypeError(`invalid device id ${id}`);
  return id;
}

/**
 * Why `prefix` cannot prefix the ids of a batch, or undefined if it can: a manufacturer running
 * fleetgate as factory tooling needs ids outside the reserved fleetgate form (`acme.atm-<hex>`)
 * and inside the namespace its customers trust.
 */
export function idPrefixProblem(prefix: string, model: string): string | undefined {
  if (!NAMESPACE_PATTERN.test(prefix)) return 'give 2 to 48 characters (lower-case letters, digits, ".", "_", "-") ending with ".", "_" or "-", e.g. acme.';
  const sample = `${prefix}${model}-000000000000`;
  if (!isDeviceId(sample)) return `${sample} would be longer than the 64 characters of a device id`;
  if (isFactoryDeviceId(sample)) return `ids such as ${sample} would have the form reserved for fleetgate's own factory ids; use a prefix with "." or "_", e.g. acme.`;
  return undefined;
}

/** A device id in a manufacturer's namespace: `<prefix><model>-<12 hex digits>` (see {@link idPrefixProblem}). */
export function newPrefixedDeviceId(prefix: string, model: string): string {
  const problem = idPrefixProblem(prefix, model);
  if (problem) throw new TypeError(`invalid id prefix ${prefix}: ${problem}`);
  return `${prefix}${model}-${randomBytes(6).toString('hex')}`;
}
