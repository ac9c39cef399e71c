import type { CapacityResult, StormStep } from './capacity.ts';
import type { ClusterCpuPart } from './cluster-cpu.ts';
import type { MessageResult } from './messages.ts';

/** Targets of the cluster issue. */
export const CLUSTER_TARGETS = {
  /** 2 workers sustain at least this multiple of one worker's storm rate. */
  twoWorkerCapacityRatio: 1.6,
  /** Server CPU per message across nodes at most this multiple of within one node. */
  crossNodeCpuRatio: 2,
  stormP99Ms: 500,
} as const;

/** What one cluster run measured: the three storm searches and the three QoS 1 phases. */
export interface ClusterMeasurements {
  readonly oneWorker: CapacityResult;
  readonly twoWorkers: CapacityResult;
  readonly mosquitto: CapacityResult;
  readonly sameNode: MessageResult;
  readonly crossNode: MessageResult;
  /** The same load through one node that routes in memory (no `--cluster-redis`): what Redis costs. */
  readonly withoutRedis: MessageResult;
  readonly mosquittoMessages: MessageResult;
}

/** The headline figures and whether the targets were met. */
export interface ClusterSummary {
  readonly capacity: { readonly oneWorker: number; readonly twoWorkers: number; readonly mosquitto: number; readonly twoWorkerRatio: number };
  /** The highest rate every setup passed: CPU per connect is compared there, under the same load. */
  readonly commonRate: number;
  readonly cpuAtCommonRate: { readonly oneWorker?: StormStep; readonly twoWorkers?: StormStep; readonly mosquitto?: StormStep };
  readonly crossNodeCpuRatio: number;
  readonly crossNodeRateRatio: number;
  readonly targetsMet: { readonly twoWorkerCapacity: boolean; readonly crossNodeCpu: boolean };
}

function stepAt(result: CapacityResult, rate: number): StormStep | undefined {
  return result.steps.find((step) => step.rate === rate);
}

/** The highest rate every setup stepped through and passed (the refining steps differ between setups). */
function highestCommonPass(results: readonly CapacityResult[]): number {
  const passed = results.map((result) => new Set(result.steps.filter((step) => step.passed).map((step) => step.rate)));
  const [first, ...others] = passed;
  return Math.max(0, ...[...(first ?? [])].filter((rate) => others.every((set) => set.has(rate))));
}

export function summarizeCluster(measured: ClusterMeasurements): ClusterSummary {
  const { oneWorker, twoWorkers, mosquitto, sameNode, crossNode } = measured;
  const commonRate = highestCommonPass([oneWorker, twoWorkers, mosquitto]);
  const twoWorkerRatio = oneWorker.capacityPerSecond > 0 ? twoWorkers.capacityPerSecond / oneWorker.capacityPerSecond : Number.NaN;
  const crossNodeCpuRatio = crossNode.serverCpuUsPerMessage / sameNode.serverCpuUsPerMessage;
  return {
    capacity: { oneWorker: oneWorker.capacityPerSecond, twoWorkers: twoWorkers.capacityPerSecond, mosquitto: mosquitto.capacityPerSecond, twoWorkerRatio },
    commonRate,
    cpuAtCommonRate: { oneWorker: stepAt(oneWorker, commonRate), twoWorkers: stepAt(twoWorkers, commonRate), mosquitto: stepAt(mosquitto, commonRate) },
    crossNodeCpuRatio,
    crossNodeRateRatio: crossNode.deliveredPerSecond / sameNode.deliveredPerSecond,
    targetsMet: { twoWorkerCapacity: twoWorkerRatio >= CLUSTER_TARGETS.twoWorkerCapacityRatio, crossNodeCpu: crossNodeCpuRatio <= CLUSTER_TARGETS.crossNodeCpuRatio },
  };
}

const PARTS: readonly ClusterCpuPart[] = ['fleetgate', 'primary', 'redis', 'postgres'];

function ms(value: number | undefined, digits = 2): string {
  return value === undefined || !Number.isFinite(value) ? 'n/a' : `${value.toFixed(digits)} ms`;
}

function parts(step: StormStep | undefined): string {
  const by = step?.cpuMsPerConnectByPart;
  if (!by) return '';
  return PARTS.filter((part) => by[part] > 0).map((part) => `${part === 'primary' ? 'of which primary' : part} ${by[part].toFixed(2)}`).join(', ');
}

function usParts(result: MessageResult): string {
  const by = result.cpuUsPerMessageByPart;
  if (!by) return '';
  return PARTS.filter((part) => by[part] > 0).map((part) => `${part} ${by[part].toFixed(1)}`).join(', ');
}

function yes(ok: boolean): string {
  return ok ? 'yes' : 'NO';
}

function capacity(result: CapacityResult): string {
  return `${result.capacityPerSecond}/s`;
}

/** Columns of the cluster table. */
export const CLUSTER_TABLE_HEADERS = ['metric', 'fleetgate 1 worker', 'fleetgate 2 workers', 'mosquitto', 'ratio', 'target', 'ok?'] as const;

/** The storm rows of the cluster table. */
export function clusterStormRows(measured: ClusterMeasurements, summary: ClusterSummary): string[][] {
  const { oneWorker, twoWorkers, mosquitto } = measured;
  const at = summary.cpuAtCommonRate;
  const atCapacity = (result: CapacityResult): StormStep | undefined => stepAt(result, result.capacityPerSecond);
  return [
    [
      `storm capacity: highest rate with CONNACK p99 <= ${CLUSTER_TARGETS.stormP99Ms} ms, no failure`,
      capacity(oneWorker),
      capacity(twoWorkers),
      capacity(mosquitto),
      `2w/1w ${Number.isFinite(summary.capacity.twoWorkerRatio) ? summary.capacity.twoWorkerRatio.toFixed(2) : 'n/a'}x`,
      `2w >= ${CLUSTER_TARGETS.twoWorkerCapacityRatio}x 1w`,
      yes(summary.targetsMet.twoWorkerCapacity),
    ],
    ['  stopped by', oneWorker.stoppedBy, twoWorkers.stoppedBy, mosquitto.stoppedBy, '', '', ''],
    [
      '  CONNACK p99 at capacity',
      ms(atCapacity(oneWorker)?.connackP99Ms, 0),
      ms(atCapacity(twoWorkers)?.connackP99Ms, 0),
      ms(atCapacity(mosquitto)?.connackP99Ms, 0),
      '',
      '',
      '',
    ],
    [
      '  load generator at capacity (cores; it shares the 2 CPUs)',
      atCapacity(oneWorker)?.loadCores.toFixed(2) ?? 'n/a',
      atCapacity(twoWorkers)?.loadCores.toFixed(2) ?? 'n/a',
      atCapacity(mosquitto)?.loadCores.toFixed(2) ?? 'n/a',
      '',
      '',
      '',
    ],
    [
      `server CPU per connect at ${summary.commonRate}/s (fleetgate + Redis + PostgreSQL)`,
      ms(at.oneWorker?.serverCpuMsPerConnect),
      ms(at.twoWorkers?.serverCpuMsPerConnect),
      ms(at.mosquitto?.serverCpuMsPerConnect),
      at.twoWorkers && at.oneWorker ? `2w/1w ${(at.twoWorkers.serverCpuMsPerConnect / at.oneWorker.serverCpuMsPerConnect).toFixed(2)}x` : '',
      '-',
      '',
    ],
    ['  by process (ms per connect)', parts(at.oneWorker), parts(at.twoWorkers), 'mosquitto alone', '', '', ''],
    ['  load generator CPU per connect', ms(at.oneWorker?.loadCpuMsPerConnect), ms(at.twoWorkers?.loadCpuMsPerConnect), ms(at.mosquitto?.loadCpuMsPerConnect), '', '', ''],
  ];
}

/** Columns of the message table. */
export const MESSAGE_TABLE_HEADERS = ['QoS 1 device -> backend service', 'msgs/s delivered', 'server CPU per message', 'by process (us)', 'acknowledged, not delivered', 'load generator'] as const;

export function clusterMessageRows(measured: ClusterMeasurements): string[][] {
  return [measured.withoutRedis, measured.sameNode, measured.crossNode, measured.mosquittoMessages].map((result) => [
    result.label,
    result.deliveredPerSecond.toFixed(0),
    `${result.serverCpuUsPerMessage.toFixed(1)} us`,
    usParts(result) || 'mosquitto alone',
    String(result.undelivered),
    `${result.loadCores.toFixed(2)} cores`,
  ]);
}

/** The cross-node verdict under the message table. */
export function crossNodeLine(summary: ClusterSummary): string {
  return (
    `across nodes / within one node: CPU per message ${summary.crossNodeCpuRatio.toFixed(2)}x (target <= ${CLUSTER_TARGETS.crossNodeCpuRatio}x: ${yes(summary.targetsMet.crossNodeCpu)}), ` +
    `messages/s ${summary.crossNodeRateRatio.toFixed(2)}x`
  );
}
