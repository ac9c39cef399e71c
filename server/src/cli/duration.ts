/** Milliseconds per unit of a CLI duration. */
const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration as the CLI takes it (`90s`, `15m`, `2h`, `7d`) in milliseconds, or undefined when
 * `text` is not one. Shared by `audit --since/--until` and `device list --expiring`.
 */
export function durationMs(text: string): number | undefined {
  const match = /^(\d+)([smhd])$/.exec(text);
  return match ? Number(match[1]) * (UNITS[match[2] as string] as number) : undefined;
}
