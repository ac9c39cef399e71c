/**
 * The `p`-th percentile (0-100) of `values` by the nearest-rank method: always one of the
 * observed values, so a p99 over 2,000 samples is the 20th slowest request, not an interpolation.
 * NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

/** The median of `values` (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? Number.NaN;
  if (sorted.length % 2 === 1) return upper;
  return ((sorted[middle - 1] ?? upper) + upper) / 2;
}

/** The median, 99th percentile and maximum of latencies, ms (nearest rank; NaN when empty). */
export interface LatencyPercentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export function latencyPercentiles(values: readonly number[]): LatencyPercentiles {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100) };
}
