import type { MqttClient } from 'mqtt';
import { payloadSeq, type AckExport } from '../../simulator/src/index.ts';

/**
 * A backend's count of what simulated devices sent: every message on `devices/<id>/...` by its
 * number (`seq` in the payload, see the simulator's --export-acks), duplicates apart.
 */
export class Ingest {
  /** Device id -> message numbers received. */
  readonly received = new Map<string, Set<number>>();
  /** Messages received, duplicates included. */
  messages = 0;
  /** Messages received again (QoS 1 allows it). */
  duplicates = 0;
  /** Messages without a number (not from the simulator). */
  unnumbered = 0;

  constructor(client: MqttClient) {
    client.on('message', (topic, payload) => this.take(topic, payload));
  }

  private take(topic: string, payload: Buffer): void {
    const [root, device] = topic.split('/');
    const seq = payloadSeq(payload);
    if (root !== 'devices' || device === undefined || seq === undefined) {
      this.unnumbered++;
      return;
    }
    this.messages++;
    let numbers = this.received.get(device);
    if (!numbers) this.received.set(device, (numbers = new Set()));
    if (numbers.has(seq)) this.duplicates++;
    else numbers.add(seq);
  }

  /** The acknowledged messages not received (`<device>#<seq>`), in the export's order. */
  missing(acks: AckExport): string[] {
    const missing: string[] = [];
    for (const [device, numbers] of Object.entries(acks.devices)) {
      const received = this.received.get(device);
      for (const seq of numbers) if (!received?.has(seq)) missing.push(`${device}#${seq}`);
    }
    return missing;
  }
}
