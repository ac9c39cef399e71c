import { lineChartSvg } from '../../simulator/src/report/html.ts';
import { total } from '../broker/count.ts';
import type { LatencyPercentiles } from '../stats.ts';
import type { CapacityResult } from '../cluster/capacity.ts';
import type { ReconnectCost, StormOutcome, TimelinePoint } from './phases.ts';

/** What one broker went through in the benchmark. */
export interface BrokerReconnectResult {
  readonly broker: 'fleetgate' | 'mosquitto';
  readonly settings: readonly string[];
  /** Connecting the whole fleet with full handshakes, before anything is timed. */
  readonly fill: { readonly wallMs: number; readonly retried: number; readonly sessionsKept: number };
  /** RSS with the whole fleet held minus RSS before, per connection. */
  readonly rssPerHeldConnectionKiB: number;
  readonly full: ReconnectCost;
  readonly resumed: ReconnectCost;
  readonly storm: StormOutcome;
}

/** The bare Node TLS server's phases (no storm): the floor under fleetgate's figures. */
export type FloorReconnectResult = Omit<BrokerReconnectResult, 'broker' | 'storm'>;

/** The targets (issue 14), as checked here. */
export const RECONNECT_TARGETS = {
  resumedOverOwnFull: 0.5,
  resumedOverMosquittoResumed: 1.3,
  fullOverMosquittoFull: 1.3,
  admittedConnackP99Ms: 500,
} as const;

/** The figures the targets are about, fleetgate against itself and against mosquitto. */
export interface ReconnectSummary {
  readonly capacityPerSecond: number;
  readonly capacitySource: string;
  readonly stormRate: number;
  readonly resumedOverOwnFull: number;
  readonly resumedOverMosquittoResumed: number;
  readonly fullOverMosquittoFull: number;
  readonly stormMet: boolean;
  readonly met: Readonly<Record<'resumedOverOwnFull' | 'resumedOverMosquittoResumed' | 'fullOverMosquittoFull' | 'storm', boolean>>;
}

function errorsOf(storm: StormOutcome): number {
  return total(storm.errors);
}

/** Whether a storm met its target: everyone connected, admitted p99 within 500 ms, no error but shedding. */
function stormMet(storm: StormOutcome): boolean {
  return storm.connected === storm.devices && storm.admittedConnackMs.p99 <= RECONNECT_TARGETS.admittedConnackP99Ms && errorsOf(storm) === 0 && storm.closedAfterConnack === 0;
}

export function summarizeReconnect(capacity: { perSecond: number; source: string }, stormRate: number, fleetgate: BrokerReconnectResult, mosquitto: BrokerReconnectResult): ReconnectSummary {
  const resumedOverOwnFull = fleetgate.resumed.serverCpuMsPerConnect / fleetgate.full.serverCpuMsPerConnect;
  const resumedOverMosquittoResumed = fleetgate.resumed.serverCpuMsPerConnect / mosquitto.resumed.serverCpuMsPerConnect;
  const fullOverMosquittoFull = fleetgate.full.serverCpuMsPerConnect / mosquitto.full.serverCpuMsPerConnect;
  const storm = stormMet(fleetgate.storm);
  return {
    capacityPerSecond: capacity.perSecond,
    capacitySource: capacity.source,
    stormRate,
    resumedOverOwnFull,
    resumedOverMosquittoResumed,
    fullOverMosquittoFull,
    stormMet: storm,
    met: {
      resumedOverOwnFull: resumedOverOwnFull <= RECONNECT_TARGETS.resumedOverOwnFull,
      resumedOverMosquittoResumed: resumedOverMosquittoResumed <= RECONNECT_TARGETS.resumedOverMosquittoResumed,
      fullOverMosquittoFull: fullOverMosquittoFull <= RECONNECT_TARGETS.fullOverMosquittoFull,
      storm,
    },
  };
}

/** A capacity search's result in one line. */
export function describeCapacity(search: CapacityResult): string {
  const late = search.lateSteps.map((step) => `${step.rate}/s`);
  const repeated = late.length > 0 ? `; run again because the load generator was late: ${late.join(', ')}` : '';
  return `searched: ${search.capacityPerSecond}/s passed (every device connected, CONNACK p99 <= 500 ms, shedding off); ${search.stoppedBy}${repeated}`;
}

export const RECONNECT_TABLE_HEADERS = ['metric', 'fleetgate', 'mosquitto', 'target', 'ok?'] as const;

const ms = (value: number): string => `${value.toFixed(2)} ms`;
const whole = (value: number): string => `${Math.round(value)} ms`;
const yes = (ok: boolean): string => (ok ? 'yes' : 'NO');
const percentiles = (p: LatencyPercentiles): string => `${whole(p.p50)} / ${whole(p.p99)} / ${whole(p.max)}`;
const loadLag = (storm: StormOutcome): string =>
  `${whole(storm.loadStartLagMs.p99)} / ${whole(storm.loadStartLagMs.max)}; ${whole(storm.loadEventLoopDelayMs.p99)} / ${whole(storm.loadEventLoopDelayMs.max)}`;
const errors = (storm: StormOutcome): string => {
  const count = errorsOf(storm);
  return count === 0 ? '0' : `${count} ${JSON.stringify(storm.errors)}`;
};

/** The table rows: cost phases, then the storm. */
export function reconnectTableRows(summary: ReconnectSummary, fleetgate: BrokerReconnectResult, mosquitto: BrokerReconnectResult, floor: FloorReconnectResult): string[][] {
  const f = fleetgate;
  const m = mosquitto;
  const aboveFloor = (kind: 'full' | 'resumed'): string => ms(f[kind].serverCpuMsPerConnect - floor[kind].serverCpuMsPerConnect);
  return [
    ['fleetgate full-handshake capacity', `${summary.capacityPerSecond}/s`, '-', '-', '-'],
    ['server CPU per full reconnect', ms(f.full.serverCpuMsPerConnect), ms(m.full.serverCpuMsPerConnect), `fleetgate <= ${RECONNECT_TARGETS.fullOverMosquittoFull}x mosquitto`, `${yes(summary.met.fullOverMosquittoFull)} (${summary.fullOverMosquittoFull.toFixed(2)}x)`],
    ['server CPU per resumed reconnect', ms(f.resumed.serverCpuMsPerConnect), ms(m.resumed.serverCpuMsPerConnect), `fleetgate <= ${RECONNECT_TARGETS.resumedOverMosquittoResumed}x mosquitto`, `${yes(summary.met.resumedOverMosquittoResumed)} (${summary.resumedOverMosquittoResumed.toFixed(2)}x)`],
    ['  resumed / own full', `${summary.resumedOverOwnFull.toFixed(2)}x`, `${(m.resumed.serverCpuMsPerConnect / m.full.serverCpuMsPerConnect).toFixed(2)}x`, `fleetgate <= ${RECONNECT_TARGETS.resumedOverOwnFull}x`, yes(summary.met.resumedOverOwnFull)],
    ['  Node TLS floor full, resumed (resumed/full)', `${ms(floor.full.serverCpuMsPerConnect)}, ${ms(floor.resumed.serverCpuMsPerConnect)} (${(floor.resumed.serverCpuMsPerConnect / floor.full.serverCpuMsPerConnect).toFixed(2)}x)`, '-', '-', '-'],
    ['  fleetgate above the floor full, resumed', `${aboveFloor('full')}, ${aboveFloor('resumed')}`, '-', '-', '-'],
    ['  sessions resumed in that phase', `${f.resumed.resumed}/${f.resumed.devices} (floor ${floor.resumed.resumed}/${floor.resumed.devices})`, `${m.resumed.resumed}/${m.resumed.devices}`, '-', '-'],
    ['  CONNACK p50 / p99 / max full, resumed', `${percentiles(f.full.connackMs)}; ${percentiles(f.resumed.connackMs)}`, `${percentiles(m.full.connackMs)}; ${percentiles(m.resumed.connackMs)}`, '-', '-'],
    ['  load generator CPU per connect full, resumed', `${ms(f.full.loadCpuMsPerConnect)}, ${ms(f.resumed.loadCpuMsPerConnect)}`, `${ms(m.full.loadCpuMsPerConnect)}, ${ms(m.resumed.loadCpuMsPerConnect)}`, '-', '-'],
    [`storm: ${f.storm.devices} devices dropped at once, back at ${summary.stormRate}/s`, '', '', '', ''],
    ['  connected in the end', `${f.storm.connected}/${f.storm.devices}`, `${m.storm.connected}/${m.storm.devices}`, 'all', yes(f.storm.connected === f.storm.devices)],
    ['  admitted CONNACK p50 / p99 / max', percentiles(f.storm.admittedConnackMs), percentiles(m.storm.admittedConnackMs), `p99 <= ${RECONNECT_TARGETS.admittedConnackP99Ms} ms`, yes(f.storm.admittedConnackMs.p99 <= RECONNECT_TARGETS.admittedConnackP99Ms)],
    ['  admitted CONNACK from the actual start p50 / p99 / max', percentiles(f.storm.admittedConnackFromStartMs), percentiles(m.storm.admittedConnackFromStartMs), '-', '-'],
    ['  load generator: start lag p99 / max; event-loop delay p99 / max', loadLag(f.storm), loadLag(m.storm), '-', '-'],
    ['  errors other than shed-and-retry', errors(f.storm), errors(m.storm), '0', yes(errorsOf(f.storm) === 0 && f.storm.closedAfterConnack === 0)],
    ['  attempts (shed)', `${f.storm.attempts} (${f.storm.shed})`, `${m.storm.attempts} (${m.storm.shed})`, '-', '-'],
    ['  device arrival to CONNACK p50 / p99 / max', percentiles(f.storm.timeToConnectedMs), percentiles(m.storm.timeToConnectedMs), '-', '-'],
    ['  all connected after', `${(f.storm.allConnectedAfterMs / 1000).toFixed(1)} s`, `${(m.storm.allConnectedAfterMs / 1000).toFixed(1)} s`, '-', '-'],
    ['  handshakes resumed', `${f.storm.resumed}/${f.storm.connected}`, `${m.storm.resumed}/${m.storm.connected}`, '-', '-'],
    ['  server CPU per device, cores', `${ms(f.storm.serverCpuMsPerDevice)}, ${f.storm.serverCores.toFixed(2)}`, `${ms(m.storm.serverCpuMsPerDevice)}, ${m.storm.serverCores.toFixed(2)}`, '-', '-'],
    ['  load generator cores; other processes', `${f.storm.loadCores.toFixed(2)}; ${f.storm.otherCores.toFixed(2)}`, `${m.storm.loadCores.toFixed(2)}; ${m.storm.otherCores.toFixed(2)}`, '-', '-'],
    ['  broker idle after the drop in', `${(f.storm.idleAfterDropMs / 1000).toFixed(1)} s`, `${(m.storm.idleAfterDropMs / 1000).toFixed(1)} s`, '-', '-'],
    [`RSS per held connection (${f.storm.devices} held)`, `${f.rssPerHeldConnectionKiB.toFixed(1)} KiB`, `${m.rssPerHeldConnectionKiB.toFixed(1)} KiB`, 'see npm run bench:memory', '-'],
  ];
}

/** Event-loop delay p99 of the load generator beyond which its own queueing shows in the latencies. */
const SATURATED_LOOP_DELAY_MS = 100;

/**
 * Warnings for storms whose load generator could not keep up (its resumed TLS connect costs about
 * as much CPU as the broker's: d2i of the session, the ECDHE share, the TCP connect): the
 * latencies from the schedule then include the generator's own queueing, and a broker that counts
 * unfinished connections sees them pending for longer.
 */
export function loadGeneratorWarnings(results: readonly BrokerReconnectResult[]): string[] {
  return results.flatMap((result) => {
    const storm = result.storm;
    if (storm.loadEventLoopDelayMs.p99 <= SATURATED_LOOP_DELAY_MS) return [];
    return [
      `warning: the load generator was saturated during ${result.broker}'s storm (event-loop delay p99 ${Math.round(storm.loadEventLoopDelayMs.p99)} ms, ` +
        `${storm.loadCores.toFixed(2)} cores, start lag p99 ${Math.round(storm.loadStartLagMs.p99)} ms): its latencies include the generator's own queueing`,
    ];
  });
}

/** Both storms' connected devices over time, with the arrivals, as one SVG chart. */
export function stormChart(fleetgate: StormOutcome, mosquitto: StormOutcome): string {
  const longer = fleetgate.timeline.length >= mosquitto.timeline.length ? fleetgate.timeline : mosquitto.timeline;
  const at = (points: readonly TimelinePoint[], index: number): TimelinePoint => (points[Math.min(index, points.length - 1)] as TimelinePoint);
  const times = longer.map((point) => point.seconds);
  return lineChartSvg(
    `Reconnect storm: ${fleetgate.devices} devices back at ${fleetgate.rate}/s, connected over time`,
    [
      { name: 'arrived', values: longer.map((_, index) => at(fleetgate.timeline, index).arrived) },
      { name: 'fleetgate connected', values: longer.map((_, index) => at(fleetgate.timeline, index).connected) },
      { name: 'mosquitto connected', values: longer.map((_, index) => at(mosquitto.timeline, index).connected) },
    ],
    times,
  );
}
