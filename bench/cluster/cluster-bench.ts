import { access, constants } from 'node:fs/promises';
import { warmUpConnects } from '../broker/connect-cost.ts';
import { assertOpenFilesFor } from '../broker/fd-limit.ts';
import { prepareBrokerFleet, type BrokerFleet } from '../broker/fleet.ts';
import { setBrokerLimits } from '../broker/fleetgate-broker.ts';
import { MOSQUITTO_BIN, mosquittoVersion, startMosquitto } from '../broker/mosquitto.ts';
import { makeTempDir, removeTempDir } from '../cleanup.ts';
import type { MachineInfo } from '../machine.ts';
import { describePinning, type Pinning } from '../pinning.ts';
import { progress } from '../progress.ts';
import { writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { startClusterBackends, type ClusterBackends } from './backends.ts';
import { findStormCapacity, type CapacityResult } from './capacity.ts';
import { ClusterCpu } from './cluster-cpu.ts';
import { startClusterNode, type ClusterNode } from './cluster-node.ts';
import { measureDeviceToService, type MessageResult } from './messages.ts';
import type { ClusterBenchOptions } from './options.ts';
import { CLUSTER_TABLE_HEADERS, CLUSTER_TARGETS, clusterMessageRows, clusterStormRows, crossNodeLine, MESSAGE_TABLE_HEADERS, summarizeCluster, type ClusterMeasurements } from './summary.ts';

/**
 * Limits for every node of the run: the per-client message pacing (500/s) would cap the QoS 1
 * phases, and the connection rate limit must not shed the storm the search is stepping up.
 */
const CLUSTER_LIMITS = { messagesPerSecond: 1_000_000, messageBurst: 1_000_000, connectionsPerSecond: 100_000, connectionBurst: 100_000 } as const;
const CLUSTER_LIMITS_WHY = 'so the storm search and the QoS 1 phases measure the nodes, not the per-client and per-node limits';

/** Untimed connect cycles after each setup starts (JIT, TLS and allocator warm-up), 32 at a time. */
const WARMUP_CONNECTS = 300;

/** The servers are not pinned in this benchmark: the 2-worker setup must be free to use both CPUs. */
const UNPINNED: Pinning = { applied: false, reason: 'cluster benchmark: servers unpinned so workers can use every CPU' };

function fleetSize(options: ClusterBenchOptions): number {
  return Math.max(Math.ceil(options.maxRate * options.stepSeconds), options.publishers + 1, WARMUP_CONNECTS);
}

/** CPU of a setup of fleetgate nodes: their processes, Redis, PostgreSQL. */
function clusterCpu(nodes: readonly ClusterNode[], backends: ClusterBackends): ClusterCpu {
  const primary = nodes.length === 1 && (nodes[0]?.workers ?? 1) > 1 ? nodes[0]?.daemon.pid : undefined;
  return new ClusterCpu({
    fleetgate: nodes.map((node) => node.daemon.pid),
    ...(primary === undefined ? {} : { primary }),
    redis: () => backends.redis.pid(),
    postgres: () => backends.postgres.postmasterPid(),
  });
}

/** The storm search against one fleetgate node of `workers` workers. */
async function fleetgateCapacity(workers: number, fleet: BrokerFleet, backends: ClusterBackends, options: ClusterBenchOptions): Promise<CapacityResult> {
  const label = `fleetgate ${workers} worker${workers === 1 ? '' : 's'}`;
  const node = await startClusterNode({ fleet, backends, nodeId: `bench-${workers}w`, workers });
  try {
    const cpu = clusterCpu([node], backends);
    const broker = { ...node, cpu: cpu.probe };
    progress(`${label}: pid ${node.daemon.pid} on port ${node.address.port}; ${WARMUP_CONNECTS} warm-up connects`);
    await warmUpConnects(broker, fleet.devices, WARMUP_CONNECTS, 32);
    return await findStormCapacity(label, broker, fleet.devices, options, cpu);
  } finally {
    await node.daemon.stop();
  }
}

/** The storm search against mosquitto, unpinned like the nodes. */
async function mosquittoCapacity(dir: string, fleet: BrokerFleet, options: ClusterBenchOptions): Promise<CapacityResult> {
  const broker = await startMosquitto({ dir, fleet, pinning: UNPINNED });
  try {
    progress(`mosquitto: pid ${broker.daemon.pid}; ${WARMUP_CONNECTS} warm-up connects`);
    await warmUpConnects(broker, fleet.devices, WARMUP_CONNECTS, 32);
    return await findStormCapacity('mosquitto', broker, fleet.devices, options, undefined);
  } finally {
    await broker.daemon.stop();
  }
}

/** QoS 1 device -> service through a lone node without Redis, within one cluster node and across two (one process each), then within mosquitto. */
async function messagePhases(dir: string, fleet: BrokerFleet, backends: ClusterBackends, options: ClusterBenchOptions): Promise<Pick<ClusterMeasurements, 'sameNode' | 'crossNode' | 'withoutRedis' | 'mosquittoMessages'>> {
  const phase = { publishers: options.publishers, window: options.window, seconds: options.messageSeconds };
  const identities = { devices: fleet.devices, service: fleet.service };
  // What routing through Redis costs: the same load through a lone node that routes in memory.
  const lone = await startClusterNode({ fleet, backends, nodeId: 'bench-lone', workers: 1, withoutRedis: true });
  let withoutRedis: MessageResult;
  try {
    const cpu = clusterCpu([lone], backends);
    const node = { ...lone, cpu: cpu.probe };
    withoutRedis = await measureDeviceToService('one node without Redis (in-memory routing)', { device: node, service: node }, identities, phase, cpu);
  } finally {
    await lone.daemon.stop();
  }
  const [a, b] = await Promise.all([startClusterNode({ fleet, backends, nodeId: 'bench-a', workers: 1 }), startClusterNode({ fleet, backends, nodeId: 'bench-b', workers: 1 })]);
  let sameNode: MessageResult;
  let crossNode: MessageResult;
  try {
    // Both nodes run in both phases, so the idle node's timers are in both figures alike.
    const cpu = clusterCpu([a, b], backends);
    const nodeA = { ...a, cpu: cpu.probe };
    const nodeB = { ...b, cpu: cpu.probe };
    sameNode = await measureDeviceToService('within one node (devices and service on node A)', { device: nodeA, service: nodeA }, identities, phase, cpu);
    crossNode = await measureDeviceToService('across nodes (devices on node A, service on node B)', { device: nodeA, service: nodeB }, identities, phase, cpu);
  } finally {
    await Promise.all([a.daemon.stop(), b.daemon.stop()]);
  }
  const mosquitto = await startMosquitto({ dir, fleet, pinning: UNPINNED });
  try {
    const mosquittoMessages = await measureDeviceToService('mosquitto (one broker)', { device: mosquitto, service: mosquitto }, identities, phase, undefined);
    return { sameNode, crossNode, withoutRedis, mosquittoMessages };
  } finally {
    await mosquitto.daemon.stop();
  }
}

/**
 * The cluster benchmark (`npm run bench -- --only cluster`): on one throwaway PostgreSQL and
 * Redis, the connection storm capacity of a fleetgate node with 1 worker and with 2 workers and
 * of mosquitto (the highest open-loop arrival rate whose CONNACK p99 stays within the target,
 * found by stepping the rate), their CPU per connect with Redis and PostgreSQL counted, and QoS 1
 * messages from devices to a backend service within one node and across two nodes. Prints the
 * tables, writes `bench/results/cluster-<timestamp>.json` and `latest-cluster.json`; returns the
 * exit status (0 when every phase ran; targets met or not are in the table).
 */
export async function runClusterBenchmark(options: ClusterBenchOptions, context: { readonly pinning: Pinning; readonly machine: MachineInfo }): Promise<number> {
  const startedAt = new Date();
  await access(MOSQUITTO_BIN, constants.X_OK).catch(() => {
    throw new Error(`${MOSQUITTO_BIN} not found: install the Debian package mosquitto (apt-get install mosquitto)`);
  });
  const devices = fleetSize(options);
  const openFiles = await assertOpenFilesFor(devices);
  progress(`cluster benchmark: fleetgate 1 and 2 workers vs ${mosquittoVersion()}, storms ${options.startRate}/s up by ${options.stepPercent} % to ${options.maxRate}/s; open-files limit ${openFiles}`);
  const dir = await makeTempDir('bench');
  try {
    const backends = await startClusterBackends(dir);
    try {
      const fleet = await prepareBrokerFleet(dir, devices, context.pinning, { registryUrl: backends.registryUrl });
      const limits = await setBrokerLimits(fleet.dataDir, CLUSTER_LIMITS);
      const oneWorker = await fleetgateCapacity(1, fleet, backends, options);
      const twoWorkers = await fleetgateCapacity(2, fleet, backends, options);
      const mosquitto = await mosquittoCapacity(dir, fleet, options);
      const messages = await messagePhases(dir, fleet, backends, options);
      const measured: ClusterMeasurements = { oneWorker, twoWorkers, mosquitto, ...messages };
      const summary = summarizeCluster(measured);
      process.stdout.write(`\nCluster: fleetgate on PostgreSQL and Redis vs ${mosquittoVersion()}, ${context.machine.nproc} CPUs\n\n`);
      process.stdout.write(`${renderTable(CLUSTER_TABLE_HEADERS, clusterStormRows(measured, summary))}\n\n`);
      process.stdout.write(`${renderTable(MESSAGE_TABLE_HEADERS, clusterMessageRows(measured))}\n${crossNodeLine(summary)}\n\n`);
      process.stdout.write(`storm steps of ${options.stepSeconds} s of arrivals, every connection released between steps; servers unpinned; load generator: ${describePinning(context.pinning)}\n`);
      process.stdout.write(`fleetgate: ${limits.join('; ')} (${CLUSTER_LIMITS_WHY})\n`);
      const path = await writeResults(
        { benchmark: 'cluster', startedAt: startedAt.toISOString(), machine: context.machine, mosquitto: mosquittoVersion(), options, pinning: context.pinning, targets: CLUSTER_TARGETS, summary, measured, limits },
        startedAt,
        'cluster',
      );
      progress(`results: ${path} (and bench/results/latest-cluster.json)`);
      return 0;
    } finally {
      await backends.stop();
    }
  } finally {
    await removeTempDir(dir);
  }
}
