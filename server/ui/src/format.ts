/** `2026-11-23T11:36:02.123Z` as `2026-11-23 11:36:02Z`; `-` when absent. */
export function shortTime(iso: string | undefined | null): string {
  if (!iso) return '-';
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return new Date(time).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** The hash route of a device's page. */
export const deviceHref = (id: string): string => `#/devices/${encodeURIComponent(id)}`;

/** The message of anything thrown. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
