import { setTimeout as sleep } from 'node:timers/promises';
import { runClosedLoop } from '../load.ts';
import { percentile } from '../stats.ts';
import type { BrokerUnderTest } from './broker-under-test.ts';
import { connectCycle, type CycleOutcome } from './connect-cycle.ts';
import type { ClientIdentity } from './mqtt-connection.ts';
import { startPhaseMeter, type PhaseReading } from './phase-meter.ts';
import { countBy } from './count.ts';

/** What the connect-cycle phase measured. */
export interface ConnectCostResult {
  readonly connects: number;
  readonly succeeded: number;
  /** Failed cycles by reason. */
  readonly failures: Record<string, number>;
  readonly connectsPerSecond: number;
  /** Cycle latency (tls.connect to PUBACK), successful cycles. */
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly reading: PhaseReading;
  /** Broker CPU over the phase plus a settle pause, per cycle: the headline figure. */
  readonly brokerCpuMsPerConnect: number;
  /** The same without the settle pause. */
  readonly brokerCpuMsPerConnectNoSettle: number;
  readonly loadCpuMsPerConnect: number;
  /** Negotiated TLS version and suite, by count. */
  readonly protocols: Record<string, number>;
}

/**
 * Work a broker defers past the last cycle (fleetgate writes presence in a batch every second;
 * garbage collection) is caused by the cycles: it is counted, one second of it.
 */
const SETTLE_MS = 1_000;

/** The identities the cycles use: each cycle the next device, wrapping around the fleet. */
function cycleIdentities(devices: readonly ClientIdentity[], count: number, offset: number): ClientIdentity[] {
  return Array.from({ length: count }, (_, index) => devices[(offset + index) % devices.length] as ClientIdentity);
}

/** Untimed cycles that must all succeed: JIT, TLS and allocator warm-up, and a check the path works. */
export async function warmUpConnects(broker: BrokerUnderTest, devices: readonly ClientIdentity[], count: number, concurrency: number): Promise<void> {
  if (count === 0) return;
  const phase = await runClosedLoop(cycleIdentities(devices, count, 0), concurrency, (identity) => connectCycle(broker.address, identity));
  const failures = countBy(phase.results.map((outcome) => outcome.failure));
  if (Object.keys(failures).length > 0) throw new Error(`${broker.kind}: warm-up connect cycles failed: ${JSON.stringify(failures)}\n${broker.daemon.outputTail()}`);
}

/**
 * The CPU-per-connect phase: `connects` cycles by `concurrency` clients in a closed loop, between
 * two readings of the broker's CPU (and a third after a settle pause).
 */
export async function measureConnectCost(
  broker: BrokerUnderTest,
  devices: readonly ClientIdentity[],
  options: { readonly connects: number; readonly concurrency: number },
): Promise<ConnectCostResult> {
  const identities = cycleIdentities(devices, options.connects, 0);
  const meter = await startPhaseMeter(broker.cpu ?? broker.daemon.pid);
  const phase = await runClosedLoop(identities, options.concurrency, (identity) => connectCycle(broker.address, identity));
  const reading = await meter.stop();
  await sleep(SETTLE_MS);
  const settled = await meter.brokerCpuSinceStart();
  const outcomes: CycleOutcome[] = phase.results;
  const ok = outcomes.filter((outcome) => outcome.failure === undefined);
  return {
    connects: outcomes.length,
    succeeded: ok.length,
    failures: countBy(outcomes.map((outcome) => outcome.failure)),
    connectsPerSecond: ok.length / (phase.wallMs / 1000),
    latencyMs: { p50: percentile(ok.map((outcome) => outcome.latencyMs), 50), p99: percentile(ok.map((outcome) => outcome.latencyMs), 99) },
    reading,
    brokerCpuMsPerConnect: settled.totalMs / outcomes.length,
    brokerCpuMsPerConnectNoSettle: reading.brokerCpu.totalMs / outcomes.length,
    loadCpuMsPerConnect: reading.loadCpuMs / outcomes.length,
    protocols: countBy(ok.map((outcome) => outcome.protocol)),
  };
}
