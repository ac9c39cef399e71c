/** What the overview charts count per minute. */
export type RateKind = 'enrolled' | 'renewed' | 'refused';

const KINDS: readonly RateKind[] = ['enrolled', 'renewed', 'refused'];

/** The last hour, minute by minute, oldest first; and refusals by code over the same hour. */
export interface RateSeries {
  /** Start of each minute, ISO 8601. */
  readonly minutes: readonly string[];
  readonly enrolled: readonly number[];
  readonly renewed: readonly number[];
  readonly refused: readonly number[];
  /** Refusal codes (EST and broker) over the window, most frequent first. */
  readonly refusalsByCode: readonly { readonly code: string; readonly count: number }[];
}

interface Bucket {
  readonly minute: number;
  readonly counts: Record<RateKind, number>;
  readonly codes: Map<string, number>;
}

/**
 * Per-minute counts of enrollments, renewals and refusals over a sliding window, built in the
 * dashboard process from the audit log and the broker's live events: the server keeps no
 * per-minute history, and the dashboard is its only reader, so it is counted where it is shown.
 * Memory is one bucket per minute of the window.
 */
export class MinuteCounts {
  private readonly buckets = new Map<number, Bucket>();

  constructor(
    private readonly windowMinutes = 60,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one event at its time (an event older than the window is ignored). */
  add(kind: RateKind, time: string | number, code?: string): void {
    const at = typeof time === 'number' ? time : Date.parse(time);
    if (Number.isNaN(at)) return;
    const minute = Math.floor(at / 60_000);
    const current = Math.floor(this.now() / 60_000);
    if (minute <= current - this.windowMinutes || minute > current + 1) return;
    let bucket = this.buckets.get(minute);
    if (!bucket) {
      bucket = { minute, counts: { enrolled: 0, renewed: 0, refused: 0 }, codes: new Map() };
      this.buckets.set(minute, bucket);
      this.prune(current);
    }
    bucket.counts[kind] += 1;
    if (kind === 'refused' && code) bucket.codes.set(code, (bucket.codes.get(code) ?? 0) + 1);
  }

  /** The window as it stands, one entry per minute (empty minutes as 0). */
  series(): RateSeries {
    const current = Math.floor(this.now() / 60_000);
    this.prune(current);
    const minutes: string[] = [];
    const values: Record<RateKind, number[]> = { enrolled: [], renewed: [], refused: [] };
    const codes = new Map<string, number>();
    for (let minute = current - this.windowMinutes + 1; minute <= current; minute++) {
      const bucket = this.buckets.get(minute);
      minutes.push(new Date(minute * 60_000).toISOString());
      for (const kind of KINDS) values[kind].push(bucket?.counts[kind] ?? 0);
      for (const [code, count] of bucket?.codes ?? []) codes.set(code, (codes.get(code) ?? 0) + count);
    }
    const refusalsByCode = [...codes].map(([code, count]) => ({ code, count })).sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
    return { minutes, ...values, refusalsByCode };
  }

  private prune(current: number): void {
    for (const minute of this.buckets.keys()) if (minute <= current - this.windowMinutes) this.buckets.delete(minute);
  }
}
