import { createHash } from 'node:crypto';
import { SdkError } from './errors.ts';
import { endpointUrlsProblem, type EndpointKind } from './protocol.ts';

/**
 * The endpoints of one kind a device was given (`estUrl` or `mqttUrl`: one URL, or the nodes of
 * a cluster), checked: `SDK_ENDPOINT_INVALID` for an empty list, a URL of another scheme than
 * https:// (EST) or mqtts:// (MQTT), or one listed twice.
 */
export function endpointList(kind: EndpointKind, value: string | readonly string[]): readonly string[] {
  const urls = typeof value === 'string' ? [value] : [...value];
  const problem = endpointUrlsProblem(kind, urls);
  if (problem !== undefined) throw new SdkError('SDK_ENDPOINT_INVALID', `${kind === 'est' ? 'estUrl' : 'mqttUrl'}: ${problem}`);
  return urls;
}

/**
 * Which endpoint of a list a device uses. It starts at a position derived from the device id (a
 * hash, so a fleet of random ids spreads evenly over the nodes, and a device that restarts goes
 * back to the node it used before), stays there while it works, and moves to the next one, in
 * list order and round again, only when told the node is unavailable.
 */
export class EndpointSelector {
  private position: number;

  constructor(
    private readonly urls: readonly string[],
    deviceId: string,
  ) {
    this.position = urls.length > 1 ? createHash('sha256').update(deviceId).digest().readUInt32BE(0) % urls.length : 0;
  }

  /** The endpoint in use (or the next to try). */
  get current(): string {
    return this.urls[this.position] as string;
  }

  /** Moves to the next endpoint; false when there is no other to move to (a single endpoint). */
  advance(): boolean {
    if (this.urls.length < 2) return false;
    this.position = (this.position + 1) % this.urls.length;
    return true;
  }
}
