import type { Gauge } from 'prom-client';
import type { DeviceRecord } from '../registry/types.ts';

/**
 * Keeps `fleetgate_devices{state,model}` current from the devices it is given
 * (registry/follow-devices.ts, in server.ts): every device once at start, then every device
 * change moves one device from its old (state, model) to its new one. A scrape renders the
 * gauge as it stands (one series per state and model), it never reads the registry, so its cost
 * does not grow with the fleet (docs/operator.md, "Health and metrics", has the measurement).
 *
 * Each device's current (state, model) is held as an index into the list of pairs seen: a
 * change event carries the new record only, and the old pair is what must be decremented.
 */
export class DeviceCensus {
  private readonly pairs: { state: string; model: string }[] = [];
  private readonly pairIndex = new Map<string, number>();
  private readonly counts: number[] = [];
  private readonly devices = new Map<string, number>();

  constructor(private readonly gauge: Gauge<'state' | 'model'>) {}

  /** Moves a device to its current (state, model). */
  place(device: Pick<DeviceRecord, 'id' | 'state' | 'model'>): void {
    const next = this.indexOf(device.state, device.model);
    const previous = this.devices.get(device.id);
    if (previous === next) return;
    if (previous !== undefined) this.adjust(previous, -1);
    this.devices.set(device.id, next);
    this.adjust(next, 1);
  }

  /** Devices by state and model now (pairs that dropped to zero included). */
  byStateAndModel(): { state: string; model: string; count: number }[] {
    return this.pairs.map((pair, index) => ({ ...pair, count: this.counts[index] ?? 0 }));
  }

  /** Devices counted now. */
  get size(): number {
    return this.devices.size;
  }

  private indexOf(state: string, model: string): number {
    const key = `${state}\u0000${model}`;
    let index = this.pairIndex.get(key);
    if (index === undefined) {
      index = this.pairs.length;
      this.pairs.push({ state, model });
      this.counts.push(0);
      this.pairIndex.set(key, index);
    }
    return index;
  }

  private adjust(index: number, delta: number): void {
    const count = (this.counts[index] ?? 0) + delta;
    this.counts[index] = count;
    // A pair that drops to zero stays at 0 (not removed): a dashboard sees "none left".
    this.gauge.set(this.pairs[index] as { state: string; model: string }, count);
  }
}
