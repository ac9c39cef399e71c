import test from 'ava';
import { createServer, type Socket } from 'node:net';
import { parseSimArgs, simulate, summaryText, Progress, type SimOptions } from '../simulator/src/index.ts';
import { parsePrometheusText } from '../simulator/src/monitor/prometheus-text.ts';
import { histogramQuantile, ServerMetrics, snapshotOf } from '../simulator/src/monitor/server-metrics.ts';
import { judgeBottleneck } from '../simulator/src/monitor/bottleneck.ts';
import { RunSampler } from '../simulator/src/sampler.ts';
import { RunRecorder } from '../simulator/src/recorder.ts';
import { colorOf, lineChart } from '../simulator/src/report/html.ts';
import type { TimePoint } from '../simulator/src/report/types.ts';
import { startFleet } from './helpers/fleet.ts';
import { freePort } from './helpers/ports.ts';
import { NoteWatcher } from './helpers/sim-notes.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor } from './helpers/wait.ts';

/** A stream that keeps what the progress writes (not a terminal: plain lines). */
function captured(): { stream: NodeJS.WriteStream; lines: string[] } {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (text: string) => lines.push(...text.split('\n').filter(Boolean)) } as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

test('Prometheus text: names, labels with escapes, +Inf, comments and unreadable lines', (t) => {
  const samples = parsePrometheusText(
    [
      '# HELP fleetgate_enrollments_total EST enrollment requests',
      '# TYPE fleetgate_enrollments_total counter',
      'fleetgate_enrollments_total{operation="simpleenroll",result="refused",code="ENROLL_\\"X\\"\\\\y"} 3',
      'fleetgate_enrollment_duration_seconds_bucket{le="+Inf",operation="simpleenroll"} 12 1700000000000',
      'fleetgate_mqtt_connected_devices 7',
      'process_start_time_seconds 1.7e9',
      'broken{le="1" 2',
      'no_value',
      '',
    ].join('\n'),
  );
  t.deepEqual(samples, [
    { name: 'fleetgate_enrollments_total', labels: { operation: 'simpleenroll', result: 'refused', code: 'ENROLL_"X"\\y' }, value: 3 },
    { name: 'fleetgate_enrollment_duration_seconds_bucket', labels: { le: '+Inf', operation: 'simpleenroll' }, value: 12 },
    { name: 'fleetgate_mqtt_connected_devices', labels: {}, value: 7 },
    { name: 'process_start_time_seconds', labels: {}, value: 1.7e9 },
  ]);
});

/** An exposition of a fleetgate server with `issued` issuances spread over the buckets. */
function exposition(buckets: Record<string, number>, extra: string[] = []): string {
  const count = buckets['+Inf'] ?? 0;
  return [
    ...Object.entries(buckets).map(([le, value]) => `fleetgate_enrollment_duration_seconds_bucket{le="${le}",operation="simpleenroll"} ${value}`),
    `fleetgate_enrollment_duration_seconds_count{operation="simpleenroll"} ${count}`,
    `fleetgate_enrollment_duration_seconds_sum{operation="simpleenroll"} ${count * 0.004}`,
    ...extra,
  ].join('\n');
}

test('server metrics: issuance quantiles from the histogram growth, loads between two scrapes, refusals by code', async (t) => {
  const before = snapshotOf([parsePrometheusText(exposition({ '0.002': 10, '0.005': 10, '0.01': 10, '+Inf': 10 }, ['fleetgate_process_cpu_seconds_total 5', 'fleetgate_mqtt_connected_devices 0']))], 0);
  // 100 more issuances: 50 under 2 ms, 40 in (2, 5] ms, 10 in (5, 10] ms.
  const after = snapshotOf(
    [parsePrometheusText(exposition({ '0.002': 60, '0.005': 100, '0.01': 110, '+Inf': 110 }, ['fleetgate_process_cpu_seconds_total 6.5', 'fleetgate_mqtt_connected_devices 40', 'fleetgate_mqtt_refusals_total{code="5"} 2', 'fleetgate_enrollments_total{operation="simpleenroll",result="refused",code="ENROLL_ALREADY_ENROLLED"} 1']))],
    2000,
  );
  t.is(histogramQuantile(before.issuance, after.issuance, 0.5), 0.002);
  t.is(Math.round((histogramQuantile(before.issuance, after.issuance, 0.9) ?? 0) * 1e6), 5000);
  t.is(Math.round((histogramQuantile(before.issuance, after.issuance, 0.95) ?? 0) * 1e6), 7500);
  let t0 = 0;
  const texts = [exposition({ '0.002': 10, '0.005': 10, '0.01': 10, '+Inf': 10 }, ['fleetgate_process_cpu_seconds_total 5']), exposition({ '0.002': 60, '0.005': 100, '0.01': 110, '+Inf': 110 }, ['fleetgate_process_cpu_seconds_total 6.5', 'fleetgate_mqtt_connected_devices 40', 'fleetgate_mqtt_refusals_total{code="5"} 2'])];
  let call = 0;
  const metrics = new ServerMetrics(['http://server/metrics'], () => t.fail('no problem expected'), { fetch: async () => texts[Math.min(call++, 1)] as string, now: () => (t0 += 2000) });
  await metrics.scrape();
  t.is(metrics.interval(), undefined, 'one scrape: no interval yet');
  await metrics.scrape();
  t.like(metrics.interval(), { connectedDevices: 40, issuancesPerSecond: 50, refusalsPerSecond: 1, cpuCores: 0.75 });
  const report = metrics.report(40);
  t.true(report.available);
  t.like(report.issuanceMs, { count: 100, p50: 2 });
  t.deepEqual(report.refusals, { est: {}, mqtt: { '5': 2 } });
  t.is(report.cpuMsPerDevice, 37.5);
});

test('server metrics: the reading before the fleet starts is tried again; without it the report gives no server figures rather than partial ones', async (t) => {
  const quiet = exposition({ '0.002': 10, '0.005': 10, '0.01': 10, '+Inf': 10 }, ['fleetgate_process_cpu_seconds_total 5']);
  const busy = exposition({ '0.002': 60, '0.005': 100, '0.01': 110, '+Inf': 110 }, ['fleetgate_process_cpu_seconds_total 6.5']);
  // Two timeouts, then the baseline; then a reading at the end of the run.
  const answers = [undefined, undefined, quiet, busy];
  let call = 0;
  const problems: string[] = [];
  const fetch = async (): Promise<string> => {
    const answer = answers[Math.min(call++, answers.length - 1)];
    if (answer === undefined) throw new Error('The operation was aborted due to timeout');
    return answer;
  };
  const retried = new ServerMetrics(['http://server/metrics'], (line) => problems.push(line), { fetch });
  await retried.baseline();
  await retried.scrape();
  const report = retried.report(100);
  t.true(report.available);
  t.like(report.issuanceMs, { count: 100 });
  t.is(problems.length, 1, 'the failed read is said once');

  // Three timeouts: the run goes on, and its later readings are not taken for a baseline.
  const missedAnswers = [undefined, undefined, undefined, quiet, busy];
  let missedCall = 0;
  const missed = new ServerMetrics(['http://server/metrics'], () => undefined, {
    fetch: async () => {
      const answer = missedAnswers[Math.min(missedCall++, missedAnswers.length - 1)];
      if (answer === undefined) throw new Error('The operation was aborted due to timeout');
      return answer;
    },
  });
  await missed.baseline();
  await missed.scrape();
  await missed.scrape();
  const partial = missed.report(100);
  t.false(partial.available);
  t.is(partial.issuanceMs, null);
  t.regex(partial.problem ?? '', /no reading before the fleet started/);
});

test('server metrics: the reading at the end of the run waits for a scrape in flight and reads afresh; without it the report gives no server figures', async (t) => {
  const before = exposition({ '0.002': 0, '0.005': 0, '0.01': 0, '+Inf': 0 }, ['fleetgate_process_cpu_seconds_total 5']);
  const midRun = exposition({ '0.002': 4, '0.005': 4, '0.01': 4, '+Inf': 4 }, ['fleetgate_process_cpu_seconds_total 5.5']);
  const after = exposition({ '0.002': 10, '0.005': 10, '0.01': 10, '+Inf': 10 }, ['fleetgate_process_cpu_seconds_total 6']);
  // The sampler's scrape is held until the end of the run asks for its reading, then times out.
  let releaseStalled: (() => void) | undefined;
  const stalled = new Promise<string>((_resolve, reject) => {
    releaseStalled = () => reject(new Error('The operation was aborted due to timeout'));
  });
  const answers: (() => Promise<string>)[] = [async () => before, async () => midRun, async () => stalled, async () => after];
  let call = 0;
  const metrics = new ServerMetrics(['http://server/metrics'], () => undefined, { fetch: () => (answers[Math.min(call++, answers.length - 1)] as () => Promise<string>)() });
  await metrics.baseline();
  await metrics.scrape();
  void metrics.scrape();
  const closing = metrics.closing();
  releaseStalled?.();
  await closing;
  const report = metrics.report(10);
  t.true(report.available, report.problem);
  t.like(report.issuanceMs, { count: 10 });
  t.is(call, 4, 'a fresh read after the one in flight');

  // Every read at the end fails: the mid-run reading is not taken for the end.
  const failing: (() => Promise<string>)[] = [async () => before, async () => midRun];
  let failingCall = 0;
  const missed = new ServerMetrics(['http://server/metrics'], () => undefined, {
    fetch: async () => {
      const answer = failing[failingCall++];
      if (!answer) throw new Error('The operation was aborted due to timeout');
      return answer();
    },
  });
  await missed.baseline();
  await missed.scrape();
  await missed.closing();
  t.is(failingCall, 5, 'three reads tried at the end');
  const partial = missed.report(10);
  t.false(partial.available);
  t.is(partial.issuanceMs, null);
  t.regex(partial.problem ?? '', /no reading when the fleet's phase ended/);

  // A server that stops answering at the end (its scrapes never settle): the run waits twice the
  // scrape timeout at most.
  let hangingCall = 0;
  const hanging = new ServerMetrics(['http://server/metrics'], () => undefined, {
    timeoutMs: 100,
    fetch: () => (hangingCall++ < 2 ? Promise.resolve(hangingCall === 1 ? before : midRun) : new Promise<string>(() => undefined)),
  });
  await hanging.baseline();
  await hanging.scrape();
  const started = performance.now();
  await hanging.closing();
  const waited = performance.now() - started;
  t.true(waited >= 190 && waited < 1000, `waited ${waited.toFixed(0)} ms for a scrape timeout of 100 ms`);
  t.is(hangingCall, 3, 'no further read once the wait is over');
  t.regex(hanging.report(10).problem ?? '', /no reading when the fleet's phase ended/);
});

test('the time axis and the rates follow the monotonic clock when the sampler fires late', (t) => {
  const recorder = new RunRecorder();
  let now = 10_000;
  let cpuMicros = 0;
  const { stream, lines } = captured();
  const sampler = new RunSampler({
    recorder,
    progress: new Progress(stream, false, 5),
    total: 10,
    threads: 1,
    view: () => ({ states: { connected: recorder.counters.connected }, connectedPerNode: {}, workerDelays: [] }),
    now: () => now,
    cpuUsage: (previous) => ({ user: cpuMicros - (previous?.user ?? 0), system: 0 }),
  });
  // A sampler meant to fire every second: on time, then 2.5 s late (a saturated event loop), then on time.
  const steps = [
    { after: 1000, connected: 2, cpu: 300_000 },
    { after: 3500, connected: 9, cpu: 3_500_000 },
    { after: 1000, connected: 10, cpu: 4_000_000 },
    { after: 1000, connected: 10, cpu: 4_100_000 },
  ];
  const points = steps.map((step) => {
    now += step.after;
    recorder.counters.connected = step.connected;
    recorder.counters.connects = step.connected;
    cpuMicros = step.cpu;
    return sampler.sample(1000);
  });
  sampler.stop();
  t.deepEqual(points.map((point) => point.t), [1, 4.5, 5.5, 6.5], 'seconds since the start, not a count of samples');
  t.deepEqual(points.map((point) => point.intervalSeconds), [1, 3.5, 1, 1]);
  t.deepEqual(points.map((point) => point.connectsPerSecond), [2, 2, 1, 0], '7 connects over 3.5 s is 2/s, not 7/s');
  t.deepEqual(points.map((point) => point.simulator.cpuCores), [0.3, 0.91, 0.5, 0.1]);
  t.deepEqual(points.map((point) => point.simulator.saturated), [false, true, false, false], 'CPU at 0.9 core per thread counts as saturated; 2.5 s late too');
  t.true(points[1]!.simulator.loopDelayP99Ms >= 2500, `the sampler came 2.5 s late: an event-loop delay of at least that (${points[1]!.simulator.loopDelayP99Ms} ms)`);
  const integral = points.reduce((sum, point) => sum + point.connectsPerSecond * point.intervalSeconds, 0);
  t.is(integral, 10, 'rate x real interval adds up to the count');
  t.deepEqual(lines.map((line) => line.slice(0, 7)), ['[   6s]'], 'one plain line per 5 s of elapsed time, stamped with the elapsed time');
});

test('bottleneck: the verdict from the share of saturated seconds, with warnings', (t) => {
  const point = (t_: number, simulatorSaturated: boolean, serverCpu: number | null): TimePoint => ({
    t: t_,
    intervalSeconds: 1,
    states: {},
    connectedPerNode: {},
    enrollmentsPerSecond: 0,
    connectsPerSecond: 0,
    messagesPerSecond: 0,
    errorsPerSecond: 0,
    simulator: { loopDelayP99Ms: simulatorSaturated ? 400 : 1, loopDelayMaxMs: 0, cpuCores: 0.5, saturated: simulatorSaturated },
    ...(serverCpu === null ? {} : { server: { connectedDevices: 0, issuanceMeanMs: null, issuancesPerSecond: 0, refusalsPerSecond: 0, cpuCores: serverCpu, loopLagP99Ms: 0 } }),
  });
  const run = { delay: { p99Ms: 400, maxMs: 900 }, threads: 1, serverProcesses: 1, serverMetrics: true };
  const series = (sim: boolean[], server: (number | null)[]): TimePoint[] => sim.map((saturated, index) => point(index + 1, saturated, server[index] ?? null));
  const ten = <T>(value: T): T[] => Array.from({ length: 10 }, () => value);
  t.is(judgeBottleneck(series(ten(false), ten(0.3)), run).verdict, 'neither');
  const simulatorBound = judgeBottleneck(series([true, true, true, ...ten(false).slice(3)], ten(0.3)), run);
  t.is(simulatorBound.verdict, 'simulator');
  t.is(simulatorBound.simulator.saturatedShare, 0.3);
  t.regex(simulatorBound.warnings[0] ?? '', /simulator was saturated for 30 % of the run \(event-loop delay p99 400 ms/);
  t.is(judgeBottleneck(series([true, ...ten(false).slice(1)], ten(0.3)), run).verdict, 'neither', 'one saturated second of ten is not a finding');
  t.is(judgeBottleneck(series(ten(false), ten(0.95)), run).verdict, 'server');
  t.is(judgeBottleneck(series(ten(true), ten(0.95)), run).verdict, 'both');
  t.is(judgeBottleneck(series(ten(false), ten(null)), { ...run, serverMetrics: false }).verdict, 'not-the-simulator');
});

test('report charts: one colour per state whatever the order, the legend on its own row under the title', (t) => {
  const a = lineChart('Devices by state', [{ name: 'enrolling', values: [1] }, { name: 'connected', values: [2] }], [1]);
  const b = lineChart('Devices by state', [{ name: 'connected', values: [2] }, { name: 'backing-off', values: [1] }, { name: 'enrolling', values: [1] }], [1]);
  const strokeOf = (svg: string, name: string): string | undefined => new RegExp(`stroke="(#[0-9a-f]{6})"[^>]*><title>${name}</title>`).exec(svg)?.[1];
  t.is(strokeOf(a, 'connected'), strokeOf(b, 'connected'));
  t.is(strokeOf(a, 'connected'), colorOf('connected'));
  t.not(colorOf('connected'), colorOf('enrolling'));
  t.is(colorOf('mqtts://127.0.0.1:9883'), colorOf('mqtts://127.0.0.1:9883'), 'a node keeps its colour');
  const titleY = /<text x="\d+" y="(\d+)" font-size="13" font-weight="bold">/.exec(a)?.[1];
  const legendY = /<text x="\d+" y="(\d+)" font-size="11"><tspan/.exec(a)?.[1];
  t.truthy(titleY && legendY);
  t.true(Number(legendY) - Number(titleY) >= 14, `legend at y=${legendY}, title at y=${titleY}: not on the same row`);
  t.regex(lineChart('x', [{ name: 'connected', values: [10 / 3] }], [23.930471212]), />3\.33<.*>24 s \(wall clock\)</s);
});

test('--metrics, --no-metrics and --stop-timeout on the command line', (t) => {
  const parse = (args: string[]): SimOptions => {
    const parsed = parseSimArgs(['--data', 'x', ...args]);
    if (!parsed) throw new Error('help');
    return parsed;
  };
  t.deepEqual(parse(['--est', 'https://10.1.2.3:8443']).metricsUrls, ['http://10.1.2.3:9464/metrics'], 'default: the server\'s metrics port beside --est');
  t.deepEqual(parse(['--est', 'https://127.0.0.1:8443,https://127.0.0.2:8443']).metricsUrls, ['http://127.0.0.1:9464/metrics', 'http://127.0.0.2:9464/metrics']);
  t.deepEqual(parse(['--metrics', 'http://127.0.0.1:1234/metrics']).metricsUrls, ['http://127.0.0.1:1234/metrics']);
  t.deepEqual(parse(['--no-metrics']).metricsUrls, []);
  t.is(parse(['--stop-timeout', '3s']).stopTimeoutMs, 3000);
  t.throws(() => parse(['--metrics', 'http://a/metrics', '--no-metrics']), { message: /exclude each other/ });
  t.throws(() => parse(['--metrics', 'ftp://a/metrics']), { message: /not an http/ });
});

// Serial: it blocks the event loop of the whole test process on purpose, and the next one times a run.
test.serial('a blocked event loop: the series keeps wall-clock time, rates add up, the simulator says it was the bottleneck; the server side comes from /metrics', async (t) => {
  const fleet = await startFleet(t);
  const parsed = parseSimArgs(['--est', fleet.estUrl, '--mqtt', fleet.server.mqttUrl, '--metrics', fleet.server.metricsUrl, '--data', fleet.dir, '--report', await tempDir(t), '--devices', '10', '--rate', 'all', '--duration', '6s', '--traffic-scale', '0.02']);
  if (!parsed) throw new Error('help');
  const progress = new NoteWatcher();
  const running = simulate(parsed, progress);
  // Once the fleet is up, block this process's event loop (simulator and server alike): 2.5 s,
  // then 1.5 s more a little later.
  await waitFor(() => /connected 10 of 10/.test(progress.lastUpdate), { what: () => `the fleet to be connected (last progress: ${progress.lastUpdate})`, timeoutMs: 60_000 });
  const block = (ms: number): void => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  block(2500);
  await new Promise((resolve) => setImmediate(resolve));
  block(1500);
  const outcome = await running;
  const { series, timing, bottleneck, serverMetrics, totals } = outcome.report;
  t.is(totals.connected, 10, JSON.stringify(outcome.report.errorsByCode));
  const last = series.at(-1) as TimePoint;
  t.true(Math.abs(last.t - timing.fleetPhaseSeconds) < 1, `last point at ${last.t} s, fleet phase ${timing.fleetPhaseSeconds} s`);
  t.true(timing.fleetPhaseSeconds >= 6 && timing.fleetPhaseSeconds < 6 + 3, `fleet phase ${timing.fleetPhaseSeconds} s for --duration 6s (a block of 2.5 s may overrun it once)`);
  t.true(series.length <= 8, `${series.length} points for about 7 s: one per elapsed second at most, not one per tick`);
  t.true(series.some((point) => point.intervalSeconds >= 2.4), `an interval stretched by the block: ${series.map((point) => point.intervalSeconds).join(', ')}`);
  const intervals = series.reduce((sum, point) => sum + point.intervalSeconds, 0);
  t.true(Math.abs(intervals - last.t) < 0.01, 'the intervals add up to the time axis');
  for (const [index, point] of series.entries()) if (index > 0) t.true(Math.abs(point.t - (series[index - 1] as TimePoint).t - point.intervalSeconds) < 0.002);
  const enrolled = series.reduce((sum, point) => sum + point.enrollmentsPerSecond * point.intervalSeconds, 0);
  t.true(Math.abs(enrolled - totals.enrolled) < 1, `rate x interval adds up to the enrollments (${enrolled} of ${totals.enrolled})`);
  t.true(bottleneck.simulator.loopDelayMaxMs >= 2000, `longest event-loop delay ${bottleneck.simulator.loopDelayMaxMs} ms`);
  t.true(series.some((point) => point.simulator.saturated));
  t.true(serverMetrics.available, serverMetrics.problem);
  t.is(serverMetrics.issuanceMs?.count, 10, 'the server issued the 10 certificates during the run');
  t.is(serverMetrics.peakConnectedDevices, 10);
  t.true(series.some((point) => point.server?.connectedDevices === 10));
});

test.serial('a server that accepts and never answers: the run ends at --duration plus the bounded stop, and an unreadable /metrics is said once', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const fleet = await startFleet(t);
  const closed = await freePort();
  const parsed = parseSimArgs(['--est', `https://127.0.0.1:${port}`, '--mqtt', fleet.server.mqttUrl, '--metrics', `http://127.0.0.1:${closed}/metrics`, '--data', fleet.dir, '--report', await tempDir(t), '--devices', '6', '--rate', 'all', '--duration', '2s', '--stop-timeout', '1s']);
  if (!parsed) throw new Error('help');
  const progress = new NoteWatcher();
  const began = performance.now();
  const outcome = await simulate(parsed, progress);
  const seconds = (performance.now() - began) / 1000;
  const { timing, serverMetrics, totals } = outcome.report;
  t.is(totals.connected, 0);
  t.true(timing.fleetPhaseSeconds >= 2 && timing.fleetPhaseSeconds < 3, `fleet phase ${timing.fleetPhaseSeconds} s`);
  t.true(timing.stopSeconds >= 0.9 && timing.stopSeconds < 2, `stop ${timing.stopSeconds} s, bound 1 s`);
  t.is(timing.devicesStoppedByForce, 6, 'every device was still waiting for its EST answer');
  t.true(seconds < 2 + 1 + 6, `simulate() returned after ${seconds.toFixed(1)} s (minting the credentials included)`);
  t.false(serverMetrics.available);
  t.regex(serverMetrics.problem ?? '', new RegExp(`127\\.0\\.0\\.1:${closed}`));
  t.true(serverMetrics.failedScrapes >= 2);
  await progress.line(/server metrics: cannot read/, 'the note about the metrics');
  t.is(progress.count(/server metrics: cannot read/), 1, 'said once, not every second');
  t.is(outcome.report.bottleneck.serverSaturatedShare, null);
});


test.serial('a loop stalled across the deadline: the run ends at its next turn, and the summary says how far past --duration and why', async (t) => {
  const fleet = await startFleet(t);
  const parsed = parseSimArgs(['--est', fleet.estUrl, '--mqtt', fleet.server.mqttUrl, '--no-metrics', '--data', fleet.dir, '--report', await tempDir(t), '--devices', '4', '--rate', 'all', '--duration', '2s']);
  if (!parsed) throw new Error('help');
  const progress = new NoteWatcher();
  const running = simulate(parsed, progress);
  // The first progress line comes about 1 s into the run: stall the loop from there past the 2 s deadline.
  await waitFor(() => progress.lastUpdate !== '', { what: 'the first progress line', timeoutMs: 60_000 });
  const until = performance.now() + 2500;
  while (performance.now() < until);
  const outcome = await running;
  const { timing } = outcome.report;
  t.true(timing.fleetPhaseSeconds >= 3, `fleet phase ${timing.fleetPhaseSeconds} s`);
  t.true(timing.fleetPhaseSeconds < 6, `fleet phase ${timing.fleetPhaseSeconds} s: ended at the first turn after the stall`);
  t.regex(summaryText(outcome, 0.01), /run \d+\.\d s \(\d+\.\d s past --duration: the simulator's event loop was stalled/);
});
