import { describePinning, type Pinning } from '../pinning.ts';
import { NOISY_CORES, type Spread } from '../summary.ts';
import { BROKER_TARGETS, type BrokerFigures, type BrokerSummary } from './summary.ts';

/** Columns of the broker table. */
export const BROKER_TABLE_HEADERS = ['metric', 'fleetgate', 'mosquitto', 'ratio f/m', 'target', 'ok?'] as const;

function value(spread: Spread, digits: number, unit = '', showSpread = true): string {
  if (!Number.isFinite(spread.median)) return 'n/a';
  const main = `${spread.median.toFixed(digits)}${unit}`;
  if (!showSpread || spread.min === spread.max) return main;
  return `${main} (${spread.min.toFixed(digits)}-${spread.max.toFixed(digits)})`;
}

function ratio(spread: Spread): string {
  return Number.isFinite(spread.median) ? `${spread.median.toFixed(2)}x` : 'n/a';
}

function yes(ok: boolean): string {
  return ok ? 'yes' : 'NO';
}

function percent(spread: Spread): string {
  return Number.isFinite(spread.median) ? `${(spread.median * 100).toFixed(0)} %` : 'n/a';
}

function counts(record: Readonly<Record<string, number>>): string {
  const entries = Object.entries(record);
  return entries.length === 0 ? '0' : entries.map(([key, count]) => `${count} x ${key}`).join(', ');
}

function disturbed(figures: BrokerFigures, runs: number): string {
  return `${figures.disturbedRuns} of ${runs} (worst ${figures.worstOtherCores.toFixed(2)} cores)`;
}

/** Messages per CPU-second from microseconds of CPU per message. */
function perCpu(usPerMessage: Spread): Spread {
  return { median: 1e6 / usPerMessage.median, min: 1e6 / usPerMessage.max, max: 1e6 / usPerMessage.min };
}

function overloadVerdict(figures: BrokerFigures, runs: number): string {
  return `alive ${figures.overloadAliveRuns}/${runs}, fresh CONNACK ${figures.overloadFreshOkRuns}/${runs}`;
}

/** Whether the flood was shed or pushed back (not simply absorbed): something must give at 2x capacity. */
function overloadHandled(figures: BrokerFigures, runs: number): boolean {
  return figures.overloadAliveRuns === runs && figures.overloadFreshOkRuns === runs;
}

/**
 * The rows of the table: per metric the two brokers' medians (min-max over the repetitions), the
 * ratio fleetgate / mosquitto paired within each repetition, and fleetgate's target. Targets are
 * fleetgate's; mosquitto is the yardstick, judged against nothing.
 */
export function brokerTableRows(summary: BrokerSummary, pinning: Pinning): string[][] {
  const { fleetgate: f, mosquitto: m, ratios: r, runs, floor } = summary;
  const t = BROKER_TARGETS;
  const stretch = r.cpuPerConnect.median <= t.cpuPerConnectRatioStretch;
  return [
    [
      'broker CPU per mTLS connect cycle',
      value(f.cpuMsPerConnect, 3, ' ms'),
      value(m.cpuMsPerConnect, 3, ' ms'),
      ratio(r.cpuPerConnect),
      `<= ${t.cpuMsPerConnect} ms (stretch: parity)`,
      `${yes(f.cpuMsPerConnect.median <= t.cpuMsPerConnect)}${stretch ? ', stretch yes' : ', stretch NO'}`,
    ],
    ['  bare Node TLS server (floor, no broker)', value(floor.cpuMsPerConnect, 3, ' ms'), '', '', '-', '-'],
    ['  fleetgate above the Node TLS floor', value(floor.fleetgateAboveMs, 3, ' ms'), '', '', '-', '-'],
    ['  without the 1 s settle', value(f.cpuMsPerConnectNoSettle, 3, ' ms'), value(m.cpuMsPerConnectNoSettle, 3, ' ms'), '', '-', '-'],
    ['  connect cycles/s (32 clients, closed loop)', value(f.connectsPerSecond, 0), value(m.connectsPerSecond, 0), '', '-', '-'],
    ['  cycle latency p99', value(f.connectLatencyP99Ms, 1, ' ms'), value(m.connectLatencyP99Ms, 1, ' ms'), '', '-', '-'],
    ['  failed cycles (all runs)', String(f.connectFailures), String(m.connectFailures), '', '0', yes(f.connectFailures === 0)],
    ['  load generator CPU per cycle', value(f.loadCpuMsPerConnect, 3, ' ms'), value(m.loadCpuMsPerConnect, 3, ' ms'), '', '-', '-'],
    ['storm CONNACK p50 (from schedule)', value(f.stormP50Ms, 1, ' ms'), value(m.stormP50Ms, 1, ' ms'), '', '-', '-'],
    ['storm CONNACK p99 (from schedule)', value(f.stormP99Ms, 1, ' ms'), value(m.stormP99Ms, 1, ' ms'), ratio(r.stormP99), `<= ${t.stormP99Ms} ms`, yes(f.stormP99Ms.median <= t.stormP99Ms)],
    ['  p99 from each actual start (without lag)', value(f.stormP99FromStartMs, 1, ' ms'), value(m.stormP99FromStartMs, 1, ' ms'), '', '-', '-'],
    ['  storm CONNACK p99, Node TLS floor', value(floor.stormP99Ms, 1, ' ms'), '', '', '-', '-'],
    ['  storm CONNACK max', value(f.stormMaxMs, 1, ' ms'), value(m.stormMaxMs, 1, ' ms'), '', '-', '-'],
    ['storm failed connections (all runs)', counts(f.stormFailureReasons), counts(m.stormFailureReasons), '', '0', yes(f.stormFailures === 0)],
    ['  broker CPU per storm connection', value(f.stormCpuMsPerConnect, 3, ' ms'), value(m.stormCpuMsPerConnect, 3, ' ms'), '', '-', '-'],
    ['  Node TLS floor CPU per storm connection', value(floor.stormCpuMsPerConnect, 3, ' ms'), '', '', '-', '-'],
    ['  load generator lag behind schedule (max)', value(f.stormScheduleLagMaxMs, 1, ' ms'), value(m.stormScheduleLagMaxMs, 1, ' ms'), '', '-', '-'],
    ['  load generator CPU (cores)', value(f.stormLoadUtilisation, 2), value(m.stormLoadUtilisation, 2), '', '-', '-'],
    ['QoS 1 msgs/s through the ACL', value(f.qos1PerSecond, 0), value(m.qos1PerSecond, 0), ratio(r.qos1), `>= ${t.qos1RatioToMosquitto}x mosquitto`, yes(r.qos1.median >= t.qos1RatioToMosquitto)],
    ['  broker CPU per message', value(f.qos1BrokerCpuUsPerMessage, 2, ' us'), value(m.qos1BrokerCpuUsPerMessage, 2, ' us'), '', '-', '-'],
    ['  messages per broker CPU-second', value(perCpu(f.qos1BrokerCpuUsPerMessage), 0), value(perCpu(m.qos1BrokerCpuUsPerMessage), 0), ratio(r.qos1PerCpu), '-', '-'],
    ['  broker / load generator CPU (cores)', `${value(f.qos1BrokerUtilisation, 2, '', false)} / ${value(f.qos1LoadUtilisation, 2, '', false)}`, `${value(m.qos1BrokerUtilisation, 2, '', false)} / ${value(m.qos1LoadUtilisation, 2, '', false)}`, '', '-', '-'],
    ['  publishers disconnected, unacked (all runs)', `${f.qos1Disconnected}, ${f.qos1Unacknowledged}`, `${m.qos1Disconnected}, ${m.qos1Unacknowledged}`, '', '0, 0', yes(f.qos1Disconnected === 0 && f.qos1Unacknowledged === 0)],
    ['broker RSS per held connection', value(f.rssPerConnectionKiB, 1, ' KiB'), value(m.rssPerConnectionKiB, 1, ' KiB'), ratio(r.rssPerConnection), `<= ${t.rssPerConnectionKiB} KiB`, yes(f.rssPerConnectionKiB.median <= t.rssPerConnectionKiB)],
    ['  Node TLS floor RSS per held connection', value(floor.rssPerConnectionKiB, 1, ' KiB'), '', '', '-', '-'],
    ['  fleetgate above the floor', value(floor.fleetgateRssAboveKiB, 1, ' KiB'), '', '', '-', '-'],
    ['  broker RSS with the storm held', value(f.rssHeldMiB, 1, ' MiB'), value(m.rssHeldMiB, 1, ' MiB'), '', '-', '-'],
    ['overload: QoS 0 offered (2x QoS 1 capacity)', value(f.overloadOfferedPerSecond, 0, '/s'), value(m.overloadOfferedPerSecond, 0, '/s'), '', '-', '-'],
    ['  written by the flooding clients', value(f.overloadWrittenPerSecond, 0, '/s'), value(m.overloadWrittenPerSecond, 0, '/s'), '', '-', '-'],
    ['  accepted (delivered to the subscriber)', value(f.overloadDeliveredPerSecond, 0, '/s'), value(m.overloadDeliveredPerSecond, 0, '/s'), ratio(r.overloadDelivered), '-', '-'],
    ['  offered but blocked by backpressure', percent(f.overloadBlockedShare), percent(m.overloadBlockedShare), '', '-', '-'],
    ['  flooding clients disconnected', counts(f.overloadDisconnected), counts(m.overloadDisconnected), '', '-', '-'],
    ['  subscriber disconnected (runs)', String(f.overloadSubscriberDisconnected), String(m.overloadSubscriberDisconnected), '', '-', '-'],
    ['  delivered in the 2 s after the flood', value(f.overloadDeliveredAfter, 0), value(m.overloadDeliveredAfter, 0), '', '-', '-'],
    ['  load generator CPU (cores)', value(f.overloadLoadUtilisation, 2), value(m.overloadLoadUtilisation, 2), '', '-', '-'],
    ['  broker CPU (cores), peak RSS', `${value(f.overloadBrokerUtilisation, 2, '', false)}, ${value(f.overloadRssPeakMiB, 0, ' MiB', false)}`, `${value(m.overloadBrokerUtilisation, 2, '', false)}, ${value(m.overloadRssPeakMiB, 0, ' MiB', false)}`, '', '-', '-'],
    ['  broker alive, fresh client afterwards', overloadVerdict(f, runs), overloadVerdict(m, runs), '', 'shed, never a crash', yes(overloadHandled(f, runs))],
    ['TLS (connect cycles)', f.protocols.join(', '), m.protocols.join(', '), '', '-', '-'],
    [
      `runs disturbed (others > ${NOISY_CORES} cores in a phase)`,
      disturbed(f, runs),
      disturbed(m, runs),
      '',
      '0',
      f.disturbedRuns + m.disturbedRuns === 0 ? 'yes' : 'NO: see spread',
    ],
    ['  of the Node TLS floor', `${floor.disturbedRuns} of ${runs}`, '', '', '0', floor.disturbedRuns === 0 ? 'yes' : 'NO: see spread'],
    ['CPU pinning', describePinning(pinning), '', '', '-', '-'],
  ];
}
