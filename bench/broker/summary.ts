import { median } from '../stats.ts';
import { NOISY_CORES, type Spread } from '../summary.ts';
import type { BrokerKind } from './broker-under-test.ts';
import { total } from './count.ts';
import type { BrokerRun, Repetition } from './repetition.ts';

/** Targets of the broker issue (DESIGN.md, "Performance targets"). */
export const BROKER_TARGETS = {
  cpuMsPerConnect: 1.2,
  /** Stretch: mosquitto parity, i.e. fleetgate / mosquitto <= 1. */
  cpuPerConnectRatioStretch: 1.0,
  stormFailures: 0,
  stormP99Ms: 500,
  qos1RatioToMosquitto: 1.3,
  rssPerConnectionKiB: 45,
} as const;

/** One broker's figures over the repetitions: medians with the spread, counts summed. */
export interface BrokerFigures {
  readonly cpuMsPerConnect: Spread;
  readonly cpuMsPerConnectNoSettle: Spread;
  readonly connectsPerSecond: Spread;
  readonly connectLatencyP99Ms: Spread;
  readonly connectFailures: number;
  readonly loadCpuMsPerConnect: Spread;
  readonly stormP50Ms: Spread;
  readonly stormP99Ms: Spread;
  readonly stormP99FromStartMs: Spread;
  readonly stormMaxMs: Spread;
  readonly stormFailures: number;
  readonly stormFailureReasons: Record<string, number>;
  readonly stormCpuMsPerConnect: Spread;
  readonly stormScheduleLagMaxMs: Spread;
  readonly stormLoadUtilisation: Spread;
  readonly rssPerConnectionKiB: Spread;
  readonly rssHeldMiB: Spread;
  readonly loadRssPerConnectionKiB: Spread;
  readonly qos1PerSecond: Spread;
  readonly qos1BrokerCpuUsPerMessage: Spread;
  readonly qos1BrokerUtilisation: Spread;
  readonly qos1LoadUtilisation: Spread;
  readonly qos1Disconnected: number;
  readonly qos1Unacknowledged: number;
  readonly overloadOfferedPerSecond: Spread;
  readonly overloadWrittenPerSecond: Spread;
  readonly overloadDeliveredPerSecond: Spread;
  readonly overloadBlockedShare: Spread;
  readonly overloadBrokerUtilisation: Spread;
  readonly overloadRssPeakMiB: Spread;
  readonly overloadDisconnected: Record<string, number>;
  readonly overloadSubscriberDisconnected: number;
  readonly overloadAliveRuns: number;
  readonly overloadFreshOkRuns: number;
  readonly overloadFreshFailures: readonly string[];
  readonly overloadFreshMs: Spread;
  readonly overloadDeliveredAfter: Spread;
  readonly overloadLoadUtilisation: Spread;
  readonly protocols: readonly string[];
  /** Repetitions in which other processes used more than NOISY_CORES during a timed phase. */
  readonly disturbedRuns: number;
  /** The most CPU (cores) others used during any timed phase of any repetition. */
  readonly worstOtherCores: number;
}

/** fleetgate / mosquitto, paired within each repetition. */
export interface BrokerRatios {
  readonly cpuPerConnect: Spread;
  /** QoS 1 messages per broker CPU-second: throughput with the load generator's limits taken out. */
  readonly qos1PerCpu: Spread;
  readonly stormP99: Spread;
  readonly qos1: Spread;
  readonly rssPerConnection: Spread;
  readonly overloadDelivered: Spread;
}

/** The bare Node TLS server's figures, and fleetgate above them (paired within each run). */
export interface FloorFigures {
  readonly cpuMsPerConnect: Spread;
  readonly fleetgateAboveMs: Spread;
  readonly stormP99Ms: Spread;
  readonly stormCpuMsPerConnect: Spread;
  readonly rssPerConnectionKiB: Spread;
  readonly fleetgateRssAboveKiB: Spread;
  readonly failures: number;
  /** Repetitions in which other processes used more than NOISY_CORES during the floor's phases. */
  readonly disturbedRuns: number;
}

/** The headline figures of the broker benchmark. */
export interface BrokerSummary {
  readonly runs: number;
  readonly fleetgate: BrokerFigures;
  readonly mosquitto: BrokerFigures;
  readonly ratios: BrokerRatios;
  readonly floor: FloorFigures;
}

function spread(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

function mergeCounts(records: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const merged: Record<string, number> = {};
  for (const record of records) for (const [key, count] of Object.entries(record)) merged[key] = (merged[key] ?? 0) + count;
  return merged;
}

function figures(runs: readonly BrokerRun[]): BrokerFigures {
  const of = (pick: (run: BrokerRun) => number): Spread => spread(runs.map(pick));
  return {
    cpuMsPerConnect: of((run) => run.connect.brokerCpuMsPerConnect),
    cpuMsPerConnectNoSettle: of((run) => run.connect.brokerCpuMsPerConnectNoSettle),
    connectsPerSecond: of((run) => run.connect.connectsPerSecond),
    connectLatencyP99Ms: of((run) => run.connect.latencyMs.p99),
    connectFailures: runs.reduce((sum, run) => sum + total(run.connect.failures), 0),
    loadCpuMsPerConnect: of((run) => run.connect.loadCpuMsPerConnect),
    stormP50Ms: of((run) => run.storm.connackMs.p50),
    stormP99Ms: of((run) => run.storm.connackMs.p99),
    stormP99FromStartMs: of((run) => run.storm.connackFromStartMs.p99),
    stormMaxMs: of((run) => run.storm.connackMs.max),
    stormFailures: runs.reduce((sum, run) => sum + total(run.storm.failures), 0),
    stormFailureReasons: mergeCounts(runs.map((run) => run.storm.failures)),
    stormCpuMsPerConnect: of((run) => run.storm.brokerCpuMsPerConnect),
    stormScheduleLagMaxMs: of((run) => run.storm.scheduleLagMs.max),
    stormLoadUtilisation: of((run) => run.storm.reading.loadCpuMs / run.storm.reading.wallMs),
    rssPerConnectionKiB: of((run) => run.storm.rssPerConnectionKiB),
    rssHeldMiB: of((run) => run.storm.rssHeldKiB / 1024),
    loadRssPerConnectionKiB: of((run) => run.storm.loadRssPerConnectionKiB),
    qos1PerSecond: of((run) => run.throughput.messagesPerSecond),
    qos1BrokerCpuUsPerMessage: of((run) => run.throughput.brokerCpuUsPerMessage),
    qos1BrokerUtilisation: of((run) => run.throughput.brokerCpuUtilisation),
    qos1LoadUtilisation: of((run) => run.throughput.loadCpuUtilisation),
    qos1Disconnected: runs.reduce((sum, run) => sum + run.throughput.disconnected, 0),
    qos1Unacknowledged: runs.reduce((sum, run) => sum + run.throughput.unacknowledged, 0),
    overloadOfferedPerSecond: of((run) => run.overload.offeredPerSecond),
    overloadWrittenPerSecond: of((run) => run.overload.writtenPerSecond),
    overloadDeliveredPerSecond: of((run) => run.overload.deliveredPerSecond),
    overloadBlockedShare: of((run) => run.overload.blockedShare),
    overloadBrokerUtilisation: of((run) => run.overload.brokerCpuUtilisation),
    overloadRssPeakMiB: of((run) => run.overload.rssPeakKiB / 1024),
    overloadDisconnected: mergeCounts(runs.map((run) => run.overload.floodClientsDisconnected)),
    overloadSubscriberDisconnected: runs.filter((run) => run.overload.subscriberDisconnected).length,
    overloadAliveRuns: runs.filter((run) => run.overload.brokerAlive).length,
    overloadFreshOkRuns: runs.filter((run) => run.overload.freshClient.failure === undefined).length,
    overloadFreshFailures: runs.flatMap((run) => (run.overload.freshClient.failure ? [run.overload.freshClient.failure] : [])),
    overloadFreshMs: of((run) => run.overload.freshClient.latencyMs),
    overloadDeliveredAfter: of((run) => run.overload.deliveredAfter),
    overloadLoadUtilisation: of((run) => run.overload.loadCpuUtilisation),
    protocols: [...new Set(runs.flatMap((run) => Object.keys(run.connect.protocols)))],
    disturbedRuns: runs.filter((run) => othersDuring(run) >= NOISY_CORES).length,
    worstOtherCores: Math.max(...runs.map(othersDuring)),
  };
}

/**
 * CPU (cores) other processes used during the timed phases of a run (the storm, the connect
 * cycles, QoS 1 and the flood): the machine is shared, and a busy neighbour on the broker's or
 * the load generator's core shows up in every figure.
 */
function othersDuring(run: BrokerRun): number {
  return Math.max(run.storm.reading.otherCores, run.connect.reading.otherCores, run.throughput.reading.otherCores, run.overload.reading.otherCores);
}

/** Reduces the repetitions to the headline figures and the paired ratios. */
export function summarizeBroker(repetitions: readonly Repetition[]): BrokerSummary {
  const runsOf = (kind: BrokerKind): BrokerRun[] => repetitions.map((repetition) => repetition[kind]);
  const ratio = (pick: (run: BrokerRun) => number): Spread => spread(repetitions.map((repetition) => pick(repetition.fleetgate) / pick(repetition.mosquitto)));
  return {
    runs: repetitions.length,
    fleetgate: figures(runsOf('fleetgate')),
    mosquitto: figures(runsOf('mosquitto')),
    ratios: {
      cpuPerConnect: ratio((run) => run.connect.brokerCpuMsPerConnect),
      stormP99: ratio((run) => run.storm.connackMs.p99),
      qos1: ratio((run) => run.throughput.messagesPerSecond),
      qos1PerCpu: ratio((run) => 1 / run.throughput.brokerCpuUsPerMessage),
      rssPerConnection: ratio((run) => run.storm.rssPerConnectionKiB),
      overloadDelivered: ratio((run) => run.overload.deliveredPerSecond),
    },
    floor: {
      cpuMsPerConnect: spread(repetitions.map((repetition) => repetition.floor.connect.brokerCpuMsPerConnect)),
      fleetgateAboveMs: spread(repetitions.map((repetition) => repetition.fleetgate.connect.brokerCpuMsPerConnect - repetition.floor.connect.brokerCpuMsPerConnect)),
      stormP99Ms: spread(repetitions.map((repetition) => repetition.floor.storm.connackMs.p99)),
      stormCpuMsPerConnect: spread(repetitions.map((repetition) => repetition.floor.storm.brokerCpuMsPerConnect)),
      rssPerConnectionKiB: spread(repetitions.map((repetition) => repetition.floor.storm.rssPerConnectionKiB)),
      fleetgateRssAboveKiB: spread(repetitions.map((repetition) => repetition.fleetgate.storm.rssPerConnectionKiB - repetition.floor.storm.rssPerConnectionKiB)),
      failures: repetitions.reduce((sum, repetition) => sum + total(repetition.floor.connect.failures) + total(repetition.floor.storm.failures), 0),
      disturbedRuns: repetitions.filter((repetition) => Math.max(repetition.floor.storm.reading.otherCores, repetition.floor.connect.reading.otherCores) >= NOISY_CORES).length,
    },
  };
}

/** Whether the run is a failure for the exit status: lost connections or a broker that died. */
export function brokerBenchFailed(summary: BrokerSummary): boolean {
  if (summary.floor.failures > 0) return true;
  return [summary.fleetgate, summary.mosquitto].some(
    (figures) => figures.connectFailures > 0 || figures.stormFailures > 0 || figures.overloadAliveRuns < summary.runs || figures.overloadFreshOkRuns < summary.runs,
  );
}
