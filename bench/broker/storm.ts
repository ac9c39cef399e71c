import { setTimeout as sleep } from 'node:timers/promises';
import { readRssKiB } from '../proc-cpu.ts';
import { latencyPercentiles, percentile } from '../stats.ts';
import { KEEPALIVE_SECONDS, type BrokerUnderTest } from './broker-under-test.ts';
import { countBy, total } from './count.ts';
import { openConnection, type ClientIdentity, type MqttConnection, type OpenResult } from './mqtt-connection.ts';
import { startPhaseMeter, type PhaseReading } from './phase-meter.ts';
import { sourceAddress } from './source-addresses.ts';

/** What the storm measured. */
export interface StormResult {
  readonly devices: number;
  readonly rate: number;
  readonly succeeded: number;
  /** Failed connections by reason (CONNACK code, socket error, timeout). */
  readonly failures: Record<string, number>;
  /**
   * CONNACK latency from each connection's scheduled start (not its actual start: a load
   * generator running late must not hide the wait), successful connections.
   */
  readonly connackMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** The same from the actual `tls.connect`, and the TLS handshake alone, for context. */
  readonly connackFromStartMs: { readonly p50: number; readonly p99: number };
  readonly handshakeMs: { readonly p50: number; readonly p99: number };
  /** How late the load generator started connections against the schedule (0 = on time). */
  readonly scheduleLagMs: { readonly p99: number; readonly max: number };
  /** From the first scheduled start to the last answer. */
  readonly reading: PhaseReading;
  readonly brokerCpuMsPerConnect: number;
  /** Broker RSS before the first connection, and with every successful connection held. */
  readonly rssBeforeKiB: number;
  readonly rssHeldKiB: number;
  readonly rssPerConnectionKiB: number;
  /** Connections still open when RSS was read (all should be). */
  readonly heldOpen: number;
  readonly loadRssPerConnectionKiB: number;
}

/** A connection not answered by then has failed; the brokers' own connect timeouts are 10 s. */
const STORM_CONNECT_TIMEOUT_MS = 30_000;
/** Pause with everything held before RSS is read: let the broker finish what the storm started. */
const HOLD_SETTLE_MS = 2_000;

/**
 * Connections started in one turn of the event loop before the I/O of those in flight gets a
 * turn. Starting every due connection at once let a late load generator fall further behind: a
 * tick 1 s late started a second's worth of TLS connects (about 1 ms each) in one go, during
 * which nothing in flight was read, and so on (a 7 s stall in the reconnect storm).
 */
const STARTS_PER_TURN = 16;

/**
 * Starts connection `index` at `index / rate` seconds after the start, whatever happened to the
 * earlier ones (an open loop: devices arrive on their own schedule, not when the broker is
 * ready), until every one is started. Timers fire late under load; each tick starts what is due,
 * {@link STARTS_PER_TURN} at a time with I/O in between, and the lag is recorded.
 */
export async function openOnSchedule(
  count: number,
  rate: number,
  start: (index: number, scheduledAt: number) => void,
): Promise<void> {
  const origin = performance.now();
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(count, Math.floor(((performance.now() - origin) * rate) / 1000) + 1);
      let started = 0;
      while (next < due && started < STARTS_PER_TURN) {
        start(next, origin + (next * 1000) / rate);
        next++;
        started++;
      }
      if (next >= count) resolve();
      else if (next < due) setImmediate(tick);
      else setTimeout(tick, Math.max(0, Math.min(5, origin + (next * 1000) / rate - performance.now())));
    };
    tick();
  });
}

/**
 * The connection storm: `devices` devices connect at a fixed `rate` (open loop), each held open
 * after its CONNACK. Measures CONNACK latency and failures, the broker's CPU per connection, and
 * its RSS per held connection: RSS with everything held minus RSS before, over the connections.
 * Returns with every connection still held; `release()` closes them.
 */
export async function runStorm(
  broker: BrokerUnderTest,
  devices: readonly ClientIdentity[],
  options: { readonly devices: number; readonly rate: number },
): Promise<{ result: StormResult; release(): Promise<void> }> {
  const count = Math.min(options.devices, devices.length);
  const pid = broker.daemon.pid;
  const rssBeforeKiB = await readRssKiB(pid);
  const loadRssBefore = process.memoryUsage().rss;
  const held: MqttConnection[] = [];
  const outcomes: { result: OpenResult; scheduledAt: number; startedAt: number; answeredAt: number }[] = [];
  const pending: Promise<void>[] = [];
  const meter = await startPhaseMeter(broker.cpu ?? pid);
  await openOnSchedule(count, options.rate, (index, scheduledAt) => {
    const startedAt = performance.now();
    const identity = devices[index] as ClientIdentity;
    pending.push(
      openConnection(broker.address, identity, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: STORM_CONNECT_TIMEOUT_MS, localAddress: sourceAddress(index, count), serverCheck: 'chain' }).then(
        (result) => {
          outcomes.push({ result, scheduledAt, startedAt, answeredAt: performance.now() });
          if (result.ok) held.push(result.connection);
        },
      ),
    );
  });
  await Promise.all(pending);
  const reading = await meter.stop();
  await sleep(HOLD_SETTLE_MS);
  const rssHeldKiB = await readRssKiB(pid);
  const loadRssHeld = process.memoryUsage().rss;
  const heldOpen = held.filter((connection) => !connection.isClosed).length;

  const ok = outcomes.filter((outcome) => outcome.result.ok);
  const failures = countBy(outcomes.map((outcome) => (outcome.result.ok ? undefined : outcome.result.failure)));
  const handshakes = ok.flatMap((outcome) => (outcome.result.ok ? [outcome.result.handshakeMs] : []));
  const lags = outcomes.map((outcome) => outcome.startedAt - outcome.scheduledAt);
  const result: StormResult = {
    devices: count,
    rate: options.rate,
    succeeded: ok.length,
    failures,
    connackMs: latencyPercentiles(ok.map((outcome) => outcome.answeredAt - outcome.scheduledAt)),
    connackFromStartMs: latencyPercentiles(ok.map((outcome) => outcome.answeredAt - outcome.startedAt)),
    handshakeMs: latencyPercentiles(handshakes),
    scheduleLagMs: { p99: percentile(lags, 99), max: percentile(lags, 100) },
    reading,
    brokerCpuMsPerConnect: reading.brokerCpu.totalMs / Math.max(1, count),
    rssBeforeKiB,
    rssHeldKiB,
    rssPerConnectionKiB: (rssHeldKiB - rssBeforeKiB) / Math.max(1, heldOpen),
    heldOpen,
    loadRssPerConnectionKiB: (loadRssHeld - loadRssBefore) / 1024 / Math.max(1, heldOpen),
  };
  if (total(failures) !== count - ok.length) throw new Error('storm bookkeeping is inconsistent');
  return {
    result,
    async release() {
      await Promise.all(held.map((connection) => connection.disconnect(10_000)));
    },
  };
}
