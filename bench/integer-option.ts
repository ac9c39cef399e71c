/**
 * A whole-number command-line option of a benchmark: `fallback` when absent, else the value, or
 * the usage error `fail` makes when it is not a whole number from `min` to `max`.
 */
export function integerOption(raw: unknown, name: string, bounds: { readonly fallback: number; readonly min: number; readonly max: number }, fail: (message: string) => Error): number {
  if (raw === undefined) return bounds.fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(value) || value < bounds.min || value > bounds.max) {
    throw fail(`--${name} must be a whole number from ${bounds.min} to ${bounds.max} (got ${String(raw)})`);
  }
  return value;
}
