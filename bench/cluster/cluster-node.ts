import { setTimeout as sleep } from 'node:timers/promises';
import { waitForConnack, type BrokerUnderTest } from '../broker/broker-under-test.ts';
import type { BrokerFleet } from '../broker/fleet.ts';
import { startDaemon } from '../daemon.ts';
import { FLEETGATE_BIN } from '../fleetgate-cli.ts';
import { freePorts } from '../free-port.ts';
import { readCommand } from '../proc-cpu.ts';
import type { ClusterBackends } from './backends.ts';

/** A `fleetgate serve` node of the cluster benchmark: where it listens and its pid. */
export interface ClusterNode extends BrokerUnderTest {
  readonly nodeId: string;
  readonly workers: number;
  /** `/readyz` beside `/metrics` on the node's metrics port. */
  readonly readyUrl: string;
}

/** How long a node may take from spawn to every worker ready (tsx compiles fleetgate on first start). */
const READY_TIMEOUT_MS = 90_000;

async function ready(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return response.status === 200;
  } catch {
    return false;
  }
}

/**
 * Starts `fleetgate serve --workers N --cluster-redis URL --node-id ID` on the fleet's data
 * directory (whose config.json names the PostgreSQL registry, written by `init --registry`, and
 * the benchmark's limits, written by setBrokerLimits), every listener on a free loopback port,
 * unpinned: the point is to let the workers use every core. Resolves once the service gets a
 * CONNACK through the node and `/readyz` says every worker is ready (the first CONNACK only
 * proves one worker listens).
 */
export async function startClusterNode(options: {
  readonly fleet: BrokerFleet;
  readonly backends: ClusterBackends;
  readonly nodeId: string;
  readonly workers: number;
  /** Without `--cluster-redis`: a lone node on the PostgreSQL registry, aedes' in-memory routing (one worker only). */
  readonly withoutRedis?: boolean;
}): Promise<ClusterNode> {
  const [estPort, mqttPort, adminPort, metricsPort] = await freePorts(4);
  if (metricsPort === undefined || mqttPort === undefined) throw new Error('no free port');
  const ports = ['--est-port', estPort, '--mqtt-port', mqttPort, '--admin-port', adminPort, '--metrics-port', metricsPort].map(String);
  const args = [FLEETGATE_BIN, 'serve', '--data', options.fleet.dataDir, '--host', '127.0.0.1', ...ports];
  if (!options.withoutRedis) args.push('--cluster-redis', options.backends.redis.url);
  args.push('--node-id', options.nodeId, '--workers', String(options.workers));
  const name = `fleetgate ${options.nodeId} (${options.workers} worker${options.workers === 1 ? '' : 's'})`;
  const daemon = startDaemon(name, process.execPath, args, { ...process.env, FLEETGATE_LOG_LEVEL: 'warn' });
  const address = { host: '127.0.0.1', port: mqttPort } as const;
  const readyUrl = `http://127.0.0.1:${metricsPort}/readyz`;
  try {
    await waitForConnack(daemon, address, options.fleet.service);
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (!(await ready(readyUrl))) {
      if (daemon.exited()) throw new Error(`${name} exited:\n${daemon.outputTail()}`);
      if (performance.now() > deadline) throw new Error(`${name}: ${readyUrl} not 200 after ${READY_TIMEOUT_MS} ms`);
      await sleep(100);
    }
    const comm = await readCommand(daemon.pid);
    if (comm === 'setpriv') throw new Error(`pid ${daemon.pid} is still setpriv, not the server`);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    kind: 'fleetgate',
    address,
    daemon,
    nodeId: options.nodeId,
    workers: options.workers,
    readyUrl,
    settings: [`--workers ${options.workers}, --node-id ${options.nodeId}, registry on PostgreSQL${options.withoutRedis ? ', no Redis' : ', --cluster-redis'}`],
  };
}
