import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * What `--export-acks FILE` writes: per device, the numbers (`seq` in the payload) of the QoS 1
 * messages the broker acknowledged with a PUBACK. A backend that subscribed to the devices'
 * topics checks that it received every one of them (QoS 1 allows duplicates, not loss).
 */
export interface AckExport {
  readonly format: 'fleetgate-sim-acks/1';
  /** Acknowledged QoS 1 messages, all devices together. */
  readonly count: number;
  /** Device id -> numbers of its acknowledged QoS 1 messages, ascending. */
  readonly devices: Readonly<Record<string, readonly number[]>>;
}

/** Writes the export; returns how many messages it lists. */
export async function writeAcks(path: string, devices: Readonly<Record<string, readonly number[]>>): Promise<number> {
  const count = Object.values(devices).reduce((sum, numbers) => sum + numbers.length, 0);
  const content: AckExport = { format: 'fleetgate-sim-acks/1', count, devices };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(content)}\n`);
  return count;
}
