import { access, constants } from 'node:fs/promises';
import { makeTempDir, removeTempDir } from '../cleanup.ts';
import type { MachineInfo } from '../machine.ts';
import type { Pinning } from '../pinning.ts';
import { progress } from '../progress.ts';
import { PROFILES_DIR, writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { assertOpenFilesFor } from './fd-limit.ts';
import { prepareBrokerFleet } from './fleet.ts';
import { MOSQUITTO_BIN, mosquittoVersion } from './mosquitto.ts';
import type { BrokerBenchOptions } from './options.ts';
import { runRepetition, type Repetition } from './repetition.ts';
import { BROKER_TARGETS, brokerBenchFailed, summarizeBroker } from './summary.ts';
import { BROKER_TABLE_HEADERS, brokerTableRows } from './table-rows.ts';

/** Devices the fleet needs: the storm's, and enough for publishers, flooders and one fresh client. */
function fleetSize(options: BrokerBenchOptions): number {
  return Math.max(options.stormDevices, options.publishers + options.floodClients + 1);
}

/**
 * The broker benchmark: fleetgate and mosquitto under the same harness, certificates and load,
 * in the same run, each fresh per repetition. Prints the table on stdout, writes
 * `bench/results/broker-<timestamp>.json` and `latest-broker.json`; returns the exit status
 * (0: every connection succeeded and both brokers survived the overload).
 */
export async function runBrokerBenchmark(options: BrokerBenchOptions, context: { readonly pinning: Pinning; readonly machine: MachineInfo }): Promise<number> {
  const startedAt = new Date();
  await access(MOSQUITTO_BIN, constants.X_OK).catch(() => {
    throw new Error(`${MOSQUITTO_BIN} not found: install the Debian package mosquitto (apt-get install mosquitto), or run --only enrollment`);
  });
  const openFiles = await assertOpenFilesFor(options.stormDevices);
  const mosquitto = mosquittoVersion();
  progress(`broker benchmark: fleetgate vs ${mosquitto}; open-files limit ${openFiles}`);
  const dir = await makeTempDir('bench');
  try {
    const fleet = await prepareBrokerFleet(dir, fleetSize(options), context.pinning);
    const repetitionContext = { fleet, options, pinning: context.pinning, dir, cpuProfileDir: options.cpuProf ? PROFILES_DIR : undefined };
    const repetitions: Repetition[] = [];
    for (let index = 0; index < options.repeat; index++) repetitions.push(await runRepetition(index, options.repeat, repetitionContext));

    const summary = summarizeBroker(repetitions);
    const fleetgateLimits = repetitions[0]?.fleetgate.settings ?? [];
    const rows = brokerTableRows(summary, context.pinning);
    process.stdout.write(`\nBroker: fleetgate vs ${mosquitto}\n\n${renderTable(BROKER_TABLE_HEADERS, rows)}\n\n`);
    if (options.repeat > 1) process.stdout.write(`values: median of ${options.repeat} runs (min-max); ratios fleetgate/mosquitto paired within each run\n`);
    process.stdout.write(`fleetgate, storm, connect and QoS 1 phases: ${fleetgateLimits.join('; ')}\n`);
    process.stdout.write('fleetgate, overload test: a fresh server with the default broker.limits (500 msgs/s per client, burst 1000)\n');
    process.stdout.write(`mosquitto: ${repetitions[0]?.mosquitto.settings.join('; ') ?? ''}\n`);
    const path = await writeResults(
      { benchmark: 'broker', startedAt: startedAt.toISOString(), machine: context.machine, mosquitto, options, pinning: context.pinning, targets: BROKER_TARGETS, summary, repetitions },
      startedAt,
      'broker',
    );
    progress(`results: ${path} (and bench/results/latest-broker.json)`);
    if (options.cpuProf) progress(`fleetgate CPU profiles: ${PROFILES_DIR} (figures above include the profiler's overhead)`);
    return brokerBenchFailed(summary) ? 1 : 0;
  } finally {
    await removeTempDir(dir);
  }
}
