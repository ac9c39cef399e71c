import { randomBytes } from 'node:crypto';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';

/**
 * A readable, unique device id: `<model>-<12 hex digits>` (48 random bits: a collision is
 * unlikely below millions of devices per model, and the registry refuses a clash anyway).
 */
export function newDeviceId(model: string): string {
  if (!MODEL_PATTERN.test(model)) throw new TypeError(`invalid model name ${model}`);
  const id = `${model}-${randomBytes(6).toString('hex')}`;
  if (!isDeviceId(id)) throw new TypeError(`invalid device id ${id}`);
  return id;
}
