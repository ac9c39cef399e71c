import type { LatencySummary, SimulationReport, TimePoint } from './types.ts';

const escape = (text: string): string => text.replace(/[&<>"]/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[char] as string);
/**
 * One colour per name, the same in every chart of every report: a device state is always the
 * same colour ("connected" green), whatever states a run happened to see and in what order.
 */
const NAMED_COLORS: Readonly<Record<string, string>> = {
  idle: '#9ca3af',
  enrolling: '#f59e0b',
  connecting: '#0891b2',
  connected: '#16a34a',
  renewing: '#7c3aed',
  'backing-off': '#ea580c',
  refused: '#dc2626',
  stopped: '#4b5563',
  enrollments: '#f59e0b',
  connects: '#16a34a',
  messages: '#2563eb',
  errors: '#dc2626',
  'simulator CPU': '#2563eb',
  'server CPU': '#db2777',
  'simulator event-loop delay p99': '#2563eb',
  'server event-loop lag p99': '#db2777',
  'connected (devices)': '#16a34a',
  'connected (server)': '#db2777',
  'issuance mean (server)': '#db2777',
};
/** For names not listed (the URLs of nodes): picked from the name, so the same node keeps its colour. */
const PALETTE = ['#2563eb', '#16a34a', '#f59e0b', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/** The colour of a series by its name. */
export function colorOf(name: string): string {
  const named = NAMED_COLORS[name];
  if (named) return named;
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length] as string;
}

/** A number as a reader wants it: at most `decimals` decimals, no trailing zeros. */
export function rounded(value: number, decimals = 2): string {
  return String(Math.round(value * 10 ** decimals) / 10 ** decimals);
}

/** A line chart of several series over time, as inline SVG in a figure; the legend has its own row under the title. */
export function lineChart(title: string, series: { name: string; values: number[] }[], times: number[]): string {
  return `<figure>${lineChartSvg(title, series, times)}</figure>`;
}

/** The same chart as a standalone SVG document (the benchmarks write it to a file). */
export function lineChartSvg(title: string, series: { name: string; values: number[] }[], times: number[]): string {
  const width = 640;
  const height = 236;
  const pad = { left: 48, right: 12, top: 44, bottom: 28 };
  const max = Math.max(1, ...series.flatMap((entry) => entry.values));
  const maxT = Math.max(1, ...times);
  const x = (t: number): number => pad.left + (t / maxT) * (width - pad.left - pad.right);
  const y = (v: number): number => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const lines = series
    .map((entry, index) => {
      const points = entry.values.map((value, i) => `${x(times[i] ?? 0).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${colorOf(entry.name)}" stroke-width="2" points="${points}"><title>${escape(entry.name)}</title></polyline>`;
    })
    .join('');
  const legend = series
    .map((entry, index) => `<tspan fill="${colorOf(entry.name)}" dx="${index ? 14 : 0}">■ ${escape(entry.name)}</tspan>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}">
<text x="${pad.left}" y="16" font-size="13" font-weight="bold">${escape(title)}</text>
<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#999"/>
<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#999"/>
<text x="${pad.left - 6}" y="${pad.top + 4}" font-size="11" text-anchor="end">${rounded(max)}</text>
<text x="${pad.left - 6}" y="${height - pad.bottom}" font-size="11" text-anchor="end">0</text>
<text x="${width - pad.right}" y="${height - 8}" font-size="11" text-anchor="end">${rounded(maxT, 0)} s (wall clock)</text>
${lines}<text x="${pad.left}" y="34" font-size="11">${legend}</text></svg>`;
}

/** A histogram of a latency summary, as inline SVG bars. */
export function histogram(title: string, summary: LatencySummary): string {
  const width = 640;
  const height = 200;
  const pad = { left: 48, right: 12, top: 24, bottom: 34 };
  const { edges, buckets } = summary.histogram;
  const max = Math.max(1, ...buckets);
  const barWidth = (width - pad.left - pad.right) / buckets.length;
  const bars = buckets
    .map((count, index) => {
      const barHeight = (count / max) * (height - pad.top - pad.bottom);
      const label = index === edges.length - 1 ? `≥${edges[index]}` : `${edges[index]}`;
      return `<rect x="${(pad.left + index * barWidth + 2).toFixed(1)}" y="${(height - pad.bottom - barHeight).toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="#2563eb"><title>${label} ms: ${count}</title></rect>
<text x="${(pad.left + index * barWidth + barWidth / 2).toFixed(1)}" y="${height - pad.bottom + 14}" font-size="10" text-anchor="middle">${label}</text>`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}">
<text x="${pad.left}" y="16" font-size="13" font-weight="bold">${escape(title)} (ms; p50 ${summary.p50}, p99 ${summary.p99}, n=${summary.count})</text>
<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#999"/>
<text x="${pad.left - 6}" y="${pad.top + 4}" font-size="11" text-anchor="end">${max}</text>${bars}</svg></figure>`;
}

function table(rows: [string, string | number | boolean | null][]): string {
  return `<table>${rows.map(([key, value]) => `<tr><th>${escape(key)}</th><td>${escape(value === null ? '—' : typeof value === 'number' ? rounded(value) : String(value))}</td></tr>`).join('')}</table>`;
}

/** The simulator's and the server's load over time, and who the bottleneck was. */
function loadSection(report: SimulationReport): string {
  const series = report.series;
  const times = series.map((point) => point.t);
  const { bottleneck, serverMetrics } = report;
  const withServer = series.some((point) => point.server !== undefined);
  const serverValues = (pick: (server: NonNullable<TimePoint['server']>) => number | null): number[] => series.map((point) => (point.server ? (pick(point.server) ?? 0) : 0));
  const issuance = serverMetrics.issuanceMs;
  const refusals = serverMetrics.refusals;
  const refusalText = refusals ? Object.entries({ ...refusals.est, ...refusals.mqtt }).map(([code, count]) => `${code} ${count}`).join(', ') || 'none' : null;
  const rows: [string, string | number | boolean | null][] = [
    ['bottleneck', bottleneck.verdict],
    ['simulator event-loop delay p99 / longest (ms)', `${rounded(bottleneck.simulator.loopDelayP99Ms)} / ${rounded(bottleneck.simulator.loopDelayMaxMs)}`],
    ['simulator CPU, highest second (cores)', `${rounded(bottleneck.simulator.peakCpuCores)} for ${bottleneck.simulator.threads} thread(s)`],
    ['share of the run the simulator was saturated', `${rounded(bottleneck.simulator.saturatedShare * 100, 1)} %`],
    ['share of the run the server was saturated', bottleneck.serverSaturatedShare === null ? 'unknown (no server metrics)' : `${rounded(bottleneck.serverSaturatedShare * 100, 1)} %`],
    ['thresholds', `event-loop delay p99 > ${bottleneck.thresholds.loopDelayP99Ms} ms or CPU >= ${bottleneck.thresholds.cpuCoresPerThread} core per thread, for >= ${bottleneck.thresholds.saturatedShare * 100} % of the run`],
    ['server metrics', serverMetrics.available ? `${serverMetrics.urls.join(', ')} (${serverMetrics.scrapes} reads, ${serverMetrics.failedScrapes} failed)` : `not available: ${serverMetrics.problem ?? ''}`],
    ['enrollment p50 / p99: devices saw (ms)', `${rounded(report.latency.enrollMs.p50)} / ${rounded(report.latency.enrollMs.p99)}`],
    ['issuance p50 / p99: server measured (ms)', issuance && issuance.count > 0 ? `${rounded(issuance.p50 ?? 0)} / ${rounded(issuance.p99 ?? 0)} (${issuance.count} issued)` : null],
    ['connected: devices / server peak', `${report.totals.connected} / ${serverMetrics.peakConnectedDevices ?? '—'}`],
    ['refused: devices / server refusals', `${report.totals.refused} / ${refusalText ?? '—'}`],
    ['server CPU per device (ms)', serverMetrics.cpuMsPerDevice],
  ];
  return `<h2>Simulator and server load</h2>${table(rows)}
${lineChart('CPU (cores)', [{ name: 'simulator CPU', values: series.map((point) => point.simulator.cpuCores) }, ...(withServer ? [{ name: 'server CPU', values: serverValues((server) => server.cpuCores) }] : [])], times)}
${lineChart('Event-loop delay (ms)', [{ name: 'simulator event-loop delay p99', values: series.map((point) => point.simulator.loopDelayP99Ms) }, ...(withServer ? [{ name: 'server event-loop lag p99', values: serverValues((server) => server.loopLagP99Ms) }] : [])], times)}
${withServer ? lineChart('Connected: what the devices saw and what the server counted', [{ name: 'connected (devices)', values: series.map((point) => point.states.connected ?? 0) }, { name: 'connected (server)', values: serverValues((server) => server.connectedDevices) }], times) : ''}
${withServer ? lineChart('Server issuance time, mean per second (ms)', [{ name: 'issuance mean (server)', values: serverValues((server) => server.issuanceMeanMs) }], times) : ''}`;
}

/** The charts of a report as standalone SVG documents (for docs/benchmarks.md), by file name. */
export function reportCharts(report: SimulationReport): Record<string, string> {
  const strip = (figure: string): string => figure.replace(/^<figure>/, '').replace(/<\/figure>$/, '');
  const times = report.series.map((point) => point.t);
  const stateNames = [...new Set(report.series.flatMap((point) => Object.keys(point.states)))];
  return {
    'states.svg': strip(lineChart('Devices by state', stateNames.map((name) => ({ name, values: report.series.map((point) => point.states[name] ?? 0) })), times)),
    'throughput.svg': strip(lineChart('Throughput (per second)', [
      { name: 'enrollments', values: report.series.map((point) => point.enrollmentsPerSecond) },
      { name: 'connects', values: report.series.map((point) => point.connectsPerSecond) },
      { name: 'messages', values: report.series.map((point) => point.messagesPerSecond) },
    ], times)),
    'enroll-latency.svg': strip(histogram('Enrollment latency', report.latency.enrollMs)),
    'connect-latency.svg': strip(histogram('Connect latency (after enrollment)', report.latency.connectMs)),
  };
}

/** The report as one self-contained HTML page (no scripts, no external resources). */
export function renderHtml(report: SimulationReport): string {
  const series: readonly TimePoint[] = report.series;
  const times = series.map((point) => point.t);
  const stateNames = [...new Set(series.flatMap((point) => Object.keys(point.states)))];
  const totals = report.totals;
  const scenarioTables = report.scenarios
    .map((scenario) => `<h3>${escape(scenario.name)}</h3>${table(Object.entries(scenario).filter(([key]) => key !== 'name').map(([key, value]) => [key, Array.isArray(value) ? value.join(', ') : (value as string | number | boolean)]))}`)
    .join('');
  const errors = Object.entries(report.errorsByCode).sort((a, b) => b[1] - a[1]);
  const { devicesPerNode, failovers, endpointMoves } = report.nodes;
  const nodeUrls = Object.keys(devicesPerNode);
  const nodesChart =
    nodeUrls.length > 1 ? lineChart('Connected devices per node', nodeUrls.map((url) => ({ name: url, values: series.map((point) => point.connectedPerNode[url] ?? 0) })), times) : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetgate-sim report ${escape(report.startedAt)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#111}.warn{background:#fef2f2;border:1px solid #fca5a5;padding:.5em 2em}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f5f5f5}figure{margin:1em 0}svg{width:100%;height:auto;background:#fcfcfc;border:1px solid #eee}</style></head>
<body><h1>fleetgate-sim: ${escape(report.scenario)}</h1>
<p>${escape(report.startedAt)} → ${escape(report.finishedAt)}; ${report.settings.devices} devices (${escape(Object.entries(report.settings.mix).map(([model, share]) => `${model} ${Math.round(share * 100)}%`).join(', '))}) at ${report.settings.ratePerSecond}/s against ${escape(report.settings.mqttUrls.join(', '))}; Node ${escape(report.machine.node)}, ${report.machine.cpus} CPUs.</p>
${report.bottleneck.warnings.length ? `<p class="warn">${report.bottleneck.warnings.map(escape).join('<br>')}</p>` : ''}
<h2>Totals</h2>${table([
    ['devices started', totals.devicesStarted],
    ['enrolled', totals.enrolled],
    ['connected', totals.connected],
    ['renewed', totals.renewed],
    ['refused', totals.refused],
    ['messages sent / acknowledged / failed', `${totals.messagesSent} / ${totals.messagesAcknowledged} / ${totals.messagesFailed}`],
    ['errors (rate)', `${totals.errors} (${(totals.errorRate * 100).toFixed(3)} %)`],
    ['all connected after (s, wall clock)', totals.allConnectedAfterSeconds],
    ['run / stop phase (s)', `${rounded(report.timing.fleetPhaseSeconds)} / ${rounded(report.timing.stopSeconds)} (bound ${report.timing.stopTimeoutSeconds} s; ${report.timing.devicesStoppedByForce} closed by force)`],
    ['devices not started before --duration', report.timing.devicesNotStarted],
    ['simulator CPU per device (ms)', report.cpu.msPerDevice],
    ['simulator peak RSS (MiB)', report.cpu.peakRssMiB],
  ])}
<h2>Devices per node</h2>${table([
    ...Object.entries(devicesPerNode).map(([url, count]): [string, number] => [`connected to ${url} at the end`, count]),
    ['failovers (a connection to another node than the previous one)', failovers],
    ['moves from an unavailable endpoint (EST / MQTT)', `${endpointMoves.est} / ${endpointMoves.mqtt}`],
  ])}${nodesChart}
${loadSection(report)}
<h2>Latency</h2>${histogram('Enrollment latency', report.latency.enrollMs)}${histogram('Connect latency (after enrollment)', report.latency.connectMs)}${histogram('QoS 1 publish to PUBACK', report.latency.publishAckMs)}
<h2>Over time</h2>${lineChart('Devices by state', stateNames.map((name) => ({ name, values: series.map((point) => point.states[name] ?? 0) })), times)}
${lineChart('Throughput (per second)', [
    { name: 'enrollments', values: series.map((point) => point.enrollmentsPerSecond) },
    { name: 'connects', values: series.map((point) => point.connectsPerSecond) },
    { name: 'messages', values: series.map((point) => point.messagesPerSecond) },
  ], times)}
${lineChart('Errors per second', [{ name: 'errors', values: series.map((point) => point.errorsPerSecond) }], times)}
<h2>Errors by code</h2>${errors.length ? table(errors) : '<p>none</p>'}
${report.scenarios.length ? `<h2>Scenario</h2>${scenarioTables}` : ''}
</body></html>
`;
}
