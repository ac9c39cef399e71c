import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BrokerUnderTest } from '../broker/broker-under-test.ts';
import { countBy, total } from '../broker/count.ts';
import type { OpenResult } from '../broker/mqtt-connection.ts';
import { cpuProbe, startPhaseMeter, type CpuProbe } from '../broker/phase-meter.ts';
import { openOnSchedule } from '../broker/storm.ts';
import { runClosedLoop } from '../load.ts';
import { cpuBetween } from '../proc-cpu.ts';
import { latencyPercentiles, type LatencyPercentiles } from '../stats.ts';
import { isShed, reconnectWithBackoff, type DeviceLink, type DeviceReconnect } from './device-links.ts';

/** After a phase, the broker finishes what it started (presence writes, session bookkeeping); that CPU counts. */
const SETTLE_MS = 1_000;

function probeOf(broker: BrokerUnderTest): CpuProbe {
  return cpuProbe(broker.cpu ?? broker.daemon.pid);
}

function failureOf(result: OpenResult): string | undefined {
  if (result.ok) return undefined;
  return isShed(result) ? 'shed' : result.failure;
}

/**
 * Connects every device with a full handshake (no session offered), `concurrency` at a time,
 * keeping the sessions the broker hands out; a device that failed gets one more pass. Throws when
 * a device is left unconnected: the storm needs the whole fleet connected a moment before.
 */
export async function connectFleet(broker: BrokerUnderTest, links: readonly DeviceLink[], concurrency: number): Promise<{ wallMs: number; retried: number }> {
  const started = performance.now();
  const first = await runClosedLoop(links, concurrency, (link) => link.connect(broker.address, false));
  const missed = links.filter((_, index) => !(first.results[index]?.ok ?? false));
  const second = await runClosedLoop(missed, concurrency, (link) => link.connect(broker.address, false));
  const failures = countBy(second.results.map(failureOf));
  if (Object.keys(failures).length > 0) {
    throw new Error(`${broker.kind}: ${total(failures)} devices could not connect: ${JSON.stringify(failures)}\n${broker.daemon.outputTail()}`);
  }
  return { wallMs: performance.now() - started, retried: missed.length };
}

/** What a CPU-per-reconnect phase measured. */
export interface ReconnectCost {
  /** `full`: no session offered; `resumed`: each device offered the session it kept. */
  readonly kind: 'full' | 'resumed';
  readonly devices: number;
  readonly rate: number;
  readonly succeeded: number;
  /** Handshakes that resumed the offered session. */
  readonly resumed: number;
  readonly failures: Record<string, number>;
  /** The broker's CPU from the first arrival to SETTLE_MS after the last CONNACK, per successful connect. */
  readonly serverCpuMsPerConnect: number;
  readonly loadCpuMsPerConnect: number;
  /** CONNACK latency from each device's scheduled arrival. */
  readonly connackMs: LatencyPercentiles;
  readonly otherCores: number;
}

/**
 * The CPU a reconnect costs the broker: `links` disconnect cleanly, the broker settles, then they
 * reconnect on an open-loop schedule at `rate`, either offering their kept sessions or not.
 * The same devices, the same rate and the same held fleet around them for both kinds.
 */
export async function measureReconnectCost(broker: BrokerUnderTest, links: readonly DeviceLink[], rate: number, kind: 'full' | 'resumed'): Promise<ReconnectCost> {
  await Promise.all(links.map((link) => link.disconnect()));
  await sleep(SETTLE_MS);
  const meter = await startPhaseMeter(probeOf(broker));
  const outcomes: { result: OpenResult; latencyMs: number }[] = [];
  const pending: Promise<void>[] = [];
  await openOnSchedule(links.length, rate, (index, scheduledAt) => {
    const link = links[index] as DeviceLink;
    pending.push(link.connect(broker.address, kind === 'resumed').then((result) => void outcomes.push({ result, latencyMs: performance.now() - scheduledAt })));
  });
  await Promise.all(pending);
  const reading = await meter.stop();
  await sleep(SETTLE_MS);
  const settled = await meter.brokerCpuSinceStart();
  const ok = outcomes.filter((outcome) => outcome.result.ok);
  return {
    kind,
    devices: links.length,
    rate,
    succeeded: ok.length,
    resumed: ok.filter((outcome) => outcome.result.ok && outcome.result.resumed).length,
    failures: countBy(outcomes.map((outcome) => failureOf(outcome.result))),
    serverCpuMsPerConnect: settled.totalMs / Math.max(1, ok.length),
    loadCpuMsPerConnect: reading.loadCpuMs / Math.max(1, ok.length),
    connackMs: latencyPercentiles(ok.map((outcome) => outcome.latencyMs)),
    otherCores: reading.otherCores,
  };
}

/** Waits until the broker uses less than a tenth of a core over a quarter second (at most `maxMs`); returns the time waited. */
async function waitForIdleBroker(probe: CpuProbe, maxMs: number): Promise<number> {
  const started = performance.now();
  let before = await probe();
  let at = performance.now();
  while (performance.now() - started < maxMs) {
    await sleep(250);
    const now = await probe();
    const nowAt = performance.now();
    const cores = cpuBetween(before, now).totalMs / (nowAt - at);
    if (cores < 0.1) break;
    before = now;
    at = nowAt;
  }
  return performance.now() - started;
}

/** A point of the storm's timeline: seconds since the storm began, and devices at that moment. */
export interface TimelinePoint {
  readonly seconds: number;
  readonly arrived: number;
  readonly connected: number;
}

/** What the reconnect storm measured. */
export interface StormOutcome {
  readonly devices: number;
  readonly rate: number;
  /** How long the broker took to go idle after every device dropped, before the storm began. */
  readonly idleAfterDropMs: number;
  readonly connected: number;
  /** From the first arrival to the last CONNACK (devices still unconnected at the deadline excluded). */
  readonly allConnectedAfterMs: number;
  /** Each device from its arrival to its CONNACK, retries included. */
  readonly timeToConnectedMs: LatencyPercentiles;
  /** Attempts the broker admitted (not shed) that got CONNACK: from the attempt's scheduled time. */
  readonly admittedConnackMs: LatencyPercentiles;
  /**
   * The same from when the load generator actually started each attempt: the difference is the
   * load generator's own lateness, which the first figure charges to the broker.
   */
  readonly admittedConnackFromStartMs: LatencyPercentiles;
  /** How late the load generator started attempts, and its event-loop delay during the storm. */
  readonly loadStartLagMs: LatencyPercentiles;
  readonly loadEventLoopDelayMs: { readonly p99: number; readonly max: number };
  readonly attempts: number;
  readonly shed: number;
  /** Failed attempts that were not shed (timeouts, refusals, resets after the handshake), by reason. */
  readonly errors: Record<string, number>;
  /** Successful connects that resumed their session. */
  readonly resumed: number;
  /** Connections the broker closed after CONNACK before the storm ended. */
  readonly closedAfterConnack: number;
  /** The broker's CPU from the first arrival to SETTLE_MS after the last CONNACK, per device. */
  readonly serverCpuMsPerDevice: number;
  readonly serverCores: number;
  readonly loadCpuMsPerDevice: number;
  readonly loadCores: number;
  readonly otherCores: number;
  /** Arrived and connected devices every quarter second, by the monotonic clock. */
  readonly timeline: readonly TimelinePoint[];
}

/** Points every `stepMs` from 0 to `endMs`: devices arrived and connected (minus those the broker closed) by then. */
function timeline(devices: readonly DeviceReconnect[], links: readonly DeviceLink[], origin: number, endMs: number, stepMs: number): TimelinePoint[] {
  const arrivals = devices.map((device) => device.arrivedAt - origin).sort((a, b) => a - b);
  const connects = devices.flatMap((device) => (device.connectedAt === undefined ? [] : [device.connectedAt - origin])).sort((a, b) => a - b);
  const closes = links.flatMap((link) => (link.closedAt === undefined ? [] : [link.closedAt - origin])).sort((a, b) => a - b);
  const points: TimelinePoint[] = [];
  const counter = (sorted: readonly number[]): ((t: number) => number) => {
    let index = 0;
    return (t) => {
      while (index < sorted.length && (sorted[index] as number) <= t) index++;
      return index;
    };
  };
  const arrivedBy = counter(arrivals);
  const connectedBy = counter(connects);
  const closedBy = counter(closes);
  for (let t = 0; t <= endMs + stepMs; t += stepMs) points.push({ seconds: t / 1000, arrived: arrivedBy(t), connected: connectedBy(t) - closedBy(t) });
  return points;
}

/**
 * The reconnect storm: every device is connected; all drop at once (sockets destroyed, no
 * DISCONNECT, as in an outage), the broker is let go idle, then the devices come back on an
 * open-loop schedule at `rate`, each offering its kept session and retrying with the SDK's backoff
 * when shed, until connected or `deadlineMs` after the first arrival.
 */
export async function runReconnectStorm(broker: BrokerUnderTest, links: readonly DeviceLink[], rate: number, deadlineMs: number): Promise<StormOutcome> {
  for (const link of links) link.drop();
  const probe = probeOf(broker);
  const idleAfterDropMs = await waitForIdleBroker(probe, 15_000);
  const meter = await startPhaseMeter(probe);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const origin = performance.now();
  const deadline = origin + deadlineMs;
  const pending: Promise<DeviceReconnect>[] = [];
  await openOnSchedule(links.length, rate, (index, scheduledAt) => {
    pending.push(reconnectWithBackoff(links[index] as DeviceLink, broker.address, scheduledAt, deadline));
  });
  const devices = await Promise.all(pending);
  const reading = await meter.stop();
  loop.disable();
  await sleep(SETTLE_MS);
  const settled = await meter.brokerCpuSinceStart();

  const connected = devices.filter((device) => device.connectedAt !== undefined);
  const attempts = devices.flatMap((device) => device.attempts);
  const admitted = attempts.filter((attempt) => attempt.outcome === 'connected');
  const lastConnect = Math.max(origin, ...connected.map((device) => device.connectedAt as number));
  const errors = countBy(attempts.map((attempt) => (attempt.outcome === 'connected' || attempt.outcome === 'shed' ? undefined : attempt.outcome)));
  return {
    devices: links.length,
    rate,
    idleAfterDropMs,
    connected: connected.length,
    allConnectedAfterMs: lastConnect - origin,
    timeToConnectedMs: latencyPercentiles(connected.map((device) => (device.connectedAt as number) - device.arrivedAt)),
    admittedConnackMs: latencyPercentiles(admitted.map((attempt) => attempt.answeredAt - attempt.scheduledAt)),
    admittedConnackFromStartMs: latencyPercentiles(admitted.map((attempt) => attempt.answeredAt - attempt.startedAt)),
    loadStartLagMs: latencyPercentiles(attempts.map((attempt) => attempt.startedAt - attempt.scheduledAt)),
    loadEventLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    attempts: attempts.length,
    shed: attempts.filter((attempt) => attempt.outcome === 'shed').length,
    errors,
    resumed: admitted.filter((attempt) => attempt.resumed).length,
    closedAfterConnack: links.filter((link) => link.closedAt !== undefined).length,
    serverCpuMsPerDevice: settled.totalMs / links.length,
    serverCores: reading.brokerCpu.totalMs / reading.wallMs,
    loadCpuMsPerDevice: reading.loadCpuMs / links.length,
    loadCores: reading.loadCpuMs / reading.wallMs,
    otherCores: reading.otherCores,
    timeline: timeline(devices, links, origin, lastConnect - origin, 250),
  };
}
