import type { BrokerUnderTest } from '../broker/broker-under-test.ts';
import { total } from '../broker/count.ts';
import type { ClientIdentity } from '../broker/mqtt-connection.ts';
import { runStorm } from '../broker/storm.ts';
import type { CpuSpent } from '../proc-cpu.ts';
import { progress } from '../progress.ts';
import { waitForQuietMachine } from '../quiet.ts';
import type { ClusterCpu, ClusterCpuPart } from './cluster-cpu.ts';
import { stormRates, type CapacitySearchOptions } from './options.ts';

/** One storm step: `devices` arrivals at `rate` per second, held until the step ends. */
export interface StormStep {
  readonly rate: number;
  readonly devices: number;
  readonly succeeded: number;
  readonly failures: Record<string, number>;
  /** CONNACK latency from each device's scheduled arrival. */
  readonly connackP50Ms: number;
  readonly connackP99Ms: number;
  /** Every device connected and p99 within the target. */
  readonly passed: boolean;
  /** Everything measured (fleetgate with Redis and PostgreSQL; mosquitto alone), per connect. */
  readonly serverCpuMsPerConnect: number;
  /** By part, per connect (fleetgate setups only). */
  readonly cpuMsPerConnectByPart?: Record<ClusterCpuPart, number>;
  /** The load generator (this process: every client) per connect, and the cores it used. */
  readonly loadCpuMsPerConnect: number;
  readonly loadCores: number;
  /** How late the load generator started connections against the schedule. */
  readonly scheduleLagP99Ms: number;
  /** Busy cores before the step, while everything was idle (others' work on a shared machine). */
  readonly busyCoresBefore: number;
}

/** What the search found for one setup. */
export interface CapacityResult {
  readonly label: string;
  readonly steps: readonly StormStep[];
  /**
   * Failed steps that were run once more because the load generator, not the server, was late
   * (see {@link LATE_SHARE_OF_TARGET}): kept for the record; their repeats are in `steps`.
   */
  readonly lateSteps: readonly StormStep[];
  /** The highest rate that passed; 0 when the first step failed already. */
  readonly capacityPerSecond: number;
  /** Why the search stopped: the first step that failed, or the maximum rate reached. */
  readonly stoppedBy: string;
}

/** How long a step waits for the machine to calm down after the previous one (presence writes, others' work). */
const QUIET_WAIT_MS = 30_000;

/**
 * Seconds of arrivals at the first rate before the search, not counted. The brokers are warmed up
 * by connect cycles before the search, but the load generator's open-loop path was not: in four
 * reconnect benchmark runs (2026-12-03) the first step's connections started up to 358-385 ms
 * late (start lag p99; 7-15 ms in the second step), which put its CONNACK p99 at 421-573 ms and
 * failed the whole search twice on a broker that passed 476/s in the same run.
 */
const WARMUP_STORM_SECONDS = 2;

/**
 * A failed step whose connections started late by more than this share of the p99 target (start
 * lag p99) says more about the load generator than about the server, and is run once more.
 */
const LATE_SHARE_OF_TARGET = 0.5;

/** Whether a step is run once more: it failed while its connections started late (above). */
export function failedForLateStarts(step: Pick<StormStep, 'passed' | 'scheduleLagP99Ms'>, p99TargetMs: number): boolean {
  return !step.passed && step.scheduleLagP99Ms > p99TargetMs * LATE_SHARE_OF_TARGET;
}

function perConnect(spent: Record<ClusterCpuPart, CpuSpent>, connects: number): Record<ClusterCpuPart, number> {
  const per = (part: ClusterCpuPart): number => spent[part].totalMs / Math.max(1, connects);
  return { fleetgate: per('fleetgate'), primary: per('primary'), redis: per('redis'), postgres: per('postgres') };
}

function why(step: StormStep): string {
  const failed = total(step.failures);
  return failed > 0 ? `${failed} failed connections` : `p99 ${step.connackP99Ms.toFixed(0)} ms`;
}

/** One open-loop storm at `rate`, every connection released afterwards. */
async function stormStep(
  label: string,
  rate: number,
  broker: BrokerUnderTest,
  devices: readonly ClientIdentity[],
  options: CapacitySearchOptions,
  cpu: ClusterCpu | undefined,
): Promise<StormStep> {
  const busyCoresBefore = await waitForQuietMachine(QUIET_WAIT_MS);
  const count = Math.min(devices.length, Math.round(rate * options.stepSeconds));
  const held = await runStorm(broker, devices, { devices: count, rate });
  const storm = held.result;
  await held.release();
  if (broker.daemon.exited()) throw new Error(`${label} exited during the storm at ${rate}/s:\n${broker.daemon.outputTail()}`);
  const failed = total(storm.failures);
  const step: StormStep = {
    rate,
    devices: count,
    succeeded: storm.succeeded,
    failures: storm.failures,
    connackP50Ms: storm.connackMs.p50,
    connackP99Ms: storm.connackMs.p99,
    passed: failed === 0 && storm.connackMs.p99 <= options.p99TargetMs,
    serverCpuMsPerConnect: storm.brokerCpuMsPerConnect,
    ...(cpu ? { cpuMsPerConnectByPart: perConnect(cpu.lastPhase(), count) } : {}),
    loadCpuMsPerConnect: storm.reading.loadCpuMs / Math.max(1, count),
    loadCores: storm.reading.loadCpuMs / storm.reading.wallMs,
    scheduleLagP99Ms: storm.scheduleLagMs.p99,
    busyCoresBefore,
  };
  progress(
    `${label}: ${rate}/s x ${options.stepSeconds} s: ${storm.succeeded}/${count} connected${failed > 0 ? ` (${failed} failed: ${JSON.stringify(storm.failures)})` : ''}, ` +
      `CONNACK p50 ${storm.connackMs.p50.toFixed(0)} ms p99 ${storm.connackMs.p99.toFixed(0)} ms, ${step.serverCpuMsPerConnect.toFixed(2)} ms server CPU per connect, ` +
      `load generator ${step.loadCores.toFixed(2)} cores -> ${step.passed ? 'pass' : 'FAIL'}`,
  );
  return step;
}

/**
 * The storm capacity of one setup: open-loop storms at rising rates (bench/broker/storm.ts: each
 * device starts at its scheduled time whatever happened to the others, and waits are counted
 * from that time), each `stepSeconds` of arrivals long, every connection released before the
 * next step. The capacity is the highest rate at which every device connected with CONNACK p99
 * at most the target; the search stops at the first rate that fails, after one step between it
 * and the last rate that passed.
 */
export async function findStormCapacity(
  label: string,
  broker: BrokerUnderTest,
  devices: readonly ClientIdentity[],
  options: CapacitySearchOptions,
  cpu: ClusterCpu | undefined,
): Promise<CapacityResult> {
  const steps: StormStep[] = [];
  const lateSteps: StormStep[] = [];
  let stoppedBy = `the maximum rate (${options.maxRate}/s) passed`;
  await warmUpStorm(label, broker, devices, options);
  const countedStep = async (rate: number): Promise<StormStep> => {
    const step = await stormStep(label, rate, broker, devices, options, cpu);
    if (!failedForLateStarts(step, options.p99TargetMs)) return step;
    progress(`${label}: ${rate}/s: the load generator started connections ${step.scheduleLagP99Ms.toFixed(0)} ms late (p99); the step runs once more`);
    lateSteps.push(step);
    return stormStep(label, rate, broker, devices, options, cpu);
  };
  for (const rate of stormRates(options)) {
    const step = await countedStep(rate);
    steps.push(step);
    if (!step.passed) {
      stoppedBy = `${rate}/s failed (${why(step)})`;
      // One more step halfway (geometrically) between the last rate that passed and this one,
      // which halves the search's resolution for one step's time.
      const lastPassed = steps.filter((earlier) => earlier.passed).at(-1)?.rate;
      const between = lastPassed === undefined ? 0 : Math.round(Math.sqrt(lastPassed * rate));
      if (lastPassed !== undefined && between > lastPassed && between < rate) {
        const refined = await countedStep(between);
        steps.push(refined);
        if (!refined.passed) stoppedBy = `${between}/s failed (${why(refined)}), between ${lastPassed}/s and ${rate}/s`;
      }
      break;
    }
  }
  const capacityPerSecond = Math.max(0, ...steps.filter((step) => step.passed).map((step) => step.rate));
  return { label, steps, lateSteps, capacityPerSecond, stoppedBy };
}

/** {@link WARMUP_STORM_SECONDS} of arrivals at the first rate, released and forgotten. */
async function warmUpStorm(label: string, broker: BrokerUnderTest, devices: readonly ClientIdentity[], options: CapacitySearchOptions): Promise<void> {
  const count = Math.min(devices.length, Math.round(options.startRate * Math.min(WARMUP_STORM_SECONDS, options.stepSeconds)));
  const held = await runStorm(broker, devices, { devices: count, rate: options.startRate });
  await held.release();
  const { connackMs, scheduleLagMs } = held.result;
  progress(`${label}: warm-up storm (not counted): ${count} at ${options.startRate}/s, CONNACK p99 ${connackMs.p99.toFixed(0)} ms, start lag p99 ${scheduleLagMs.p99.toFixed(0)} ms`);
}
