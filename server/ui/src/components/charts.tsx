/** @jsxImportSource preact */
import { shortTime } from '../format.ts';

/**
 * Counts per minute as an SVG bar chart (plain SVG, no chart library: one series of at most 60
 * bars). The total and the peak are in the label, for screen readers and for the test.
 */
export function MinuteChart({ label, minutes, values, kind }: { label: string; minutes: readonly string[]; values: readonly number[]; kind: 'enrolled' | 'renewed' | 'refused' }) {
  const width = 600;
  const height = 150;
  const top = 22;
  const bottom = 26;
  const peak = Math.max(1, ...values);
  const total = values.reduce((sum, value) => sum + value, 0);
  const step = width / Math.max(1, values.length);
  const summary = `${label}: ${total} in the last ${values.length} minutes, at most ${Math.max(0, ...values)} a minute`;
  return (
    <figure class="card" data-series={kind} data-total={total}>
      <h3>{label}</h3>
      <svg class="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={summary}>
        <title>{summary}</title>
        <line class="axis" x1="0" y1={height - bottom} x2={width} y2={height - bottom} />
        {values.map((value, index) => {
          const barHeight = ((height - top - bottom) * value) / peak;
          return value > 0 ? (
            <rect class={`bar-${kind}`} x={index * step + 1} y={height - bottom - barHeight} width={Math.max(1, step - 2)} height={barHeight}>
              <title>{`${shortTime(minutes[index])}: ${value}`}</title>
            </rect>
          ) : null;
        })}
        <text x="0" y={height - 4}>{shortTime(minutes[0]).slice(11, 16)}</text>
        <text x={width} y={height - 4} text-anchor="end">{shortTime(minutes.at(-1)).slice(11, 16)}</text>
        <text x="2" y={top - 4}>{peak}</text>
      </svg>
      <figcaption class="muted">{total} in the last hour</figcaption>
    </figure>
  );
}

/** Named counts as a list of meters, largest first. */
export function CountBars({ rows, label }: { rows: readonly { name: string; count: number }[]; label: string }) {
  const max = Math.max(1, ...rows.map((row) => row.count));
  if (rows.length === 0) return <p class="muted">None.</p>;
  return (
    <div class="bars" role="list" aria-label={label}>
      {rows.map((row) => (
        <div class="row" role="listitem">
          <span class="label" title={row.name}>{row.name}</span>
          <meter min={0} max={max} value={row.count} aria-label={`${row.name}: ${row.count}`} />
          <span data-count-of={row.name}>{row.count}</span>
        </div>
      ))}
    </div>
  );
}
