import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { listen, urlHost, type ListenOptions } from '../listen.ts';
import { CHECK_TIMEOUT_MS, HealthState, type Readiness } from '../metrics/health.ts';
import { createMetricsServer, type MetricsSource } from '../metrics/metrics-server.ts';
import { WorkerPoolMetrics } from '../metrics/metrics.ts';
import { ClusterError, WorkerError } from './errors.ts';
import { isFleetgateMessage, RESTART_DELAY_MS, RESTARTS_PER_MINUTE, WORKER_SPEC_ENV, workerName, type PrimaryMessage, type WorkerMessage, type WorkerMetrics, type WorkerSpec } from './worker-protocol.ts';

/*
 * The primary of `fleetgate serve --workers N`: it forks N worker processes (node:cluster) that
 * run a cluster node each on the same listening ports, serves the metrics of all of them on the
 * one metrics port, restarts a worker that dies, and stops them all gracefully.
 *
 * How connections reach the workers. Node 20 cannot put SO_REUSEPORT on a listening socket
 * (`reusePort` in `listen()` came with Node 22.12 / 23.1; Node 20 ignores the option and the
 * second bind fails with EADDRINUSE), so the choice is node:cluster's two policies:
 * SCHED_RR (the primary accepts and hands each connection to the next worker in turn) and
 * SCHED_NONE (every worker accepts on the shared socket and the kernel wakes one). Measured on
 * the 2-core test machine, 200 MQTT TLS connections (one service certificate, held open) from one
 * client process, connections per worker from `fleetgate_worker_mqtt_connections`, 3 rounds each
 * (test/serve-workers.test.ts "balance" for 2 workers; NODE_CLUSTER_SCHED_POLICY=none there
 * measures the kernel):
 *
 *   2 workers        round robin                      kernel (SCHED_NONE)
 *   1 at a time      100/100 every round              86/114, 103/97, 90/110, 113/87, 108/92
 *   20 at a time     99/101, 97/103, 94/106, 101/99   90/110, 116/84, 96/104, 124/76, 77/123
 *   200 at once      94/106, 112/88, 109/91           one handshake reset in the burst
 *   4 workers
 *   1 at a time      50/50/50/50 every round          60/37/29/74, 65/46/28/61, 64/42/31/63
 *   20 at a time     48..53 each                      44/32/42/82, 47/42/55/56, 56/35/38/71
 *   200 at once      53/47/47/53, 49/45/50/56,        67/33/44/56, 49/36/65/50, 43/48/56/53
 *                    37/28/67/68
 *
 * Round robin is even unless a worker is busy (the primary hands a connection only to a worker that
 * has taken the previous one, so a full burst favours the idle ones); the kernel is uneven even
 * one connection at a time. So the primary keeps Node's default on Linux, round robin, unless
 * NODE_CLUSTER_SCHED_POLICY says otherwise.
 *
 * Its price is the primary's CPU: it accepts every connection and passes the socket to a worker
 * over IPC. 500 MQTT TLS connects, 20 at a time, 2 workers, twice each (machine at load 12): the
 * primary spent 0.62 and 0.66 ms per connect under round robin, 0.20 and 0.22 ms (its idle
 * timers) under SCHED_NONE, while the workers spent about 8 ms per connect together. About
 * 0.4 ms per connection, one core: a primary hands out at most a couple of thousand connections
 * a second, which a connection storm on a large machine may reach (see the storm benchmark).
 */

/** The `fleetgate` bin the workers run (from src/cluster or dist/cluster alike). */
const FLEETGATE_BIN = fileURLToPath(new URL('../../bin/fleetgate.js', import.meta.url));

/** How long a worker may take to stop gracefully before it is killed. */
const STOP_TIMEOUT_MS = 30_000;
const MINUTE_MS = 60_000;

/** Options of {@link startWorkerPool}. */
export interface WorkerPoolOptions {
  readonly workers: number;
  /** The node id; worker i is `<nodeId>-w<i>`. */
  readonly nodeId: string;
  readonly dataDir: string;
  readonly registryUrl: string;
  readonly clusterRedis: string;
  readonly listen: ListenOptions;
  /** `health.shutdownDrainMs`: how long `/readyz` answers 503 before the workers are stopped. */
  readonly drainMs: number;
  readonly logger: Logger;
}

/**
 * What follows the death of a running worker, given when the earlier ones died: a restart after
 * `waitMs` (1 s, doubled for each death within the last minute: 1, 2, 4, 8, 16 s), or none
 * (`waitMs` undefined) once more than {@link RESTARTS_PER_MINUTE} deaths fall within a minute.
 * `deaths` is the new list, the deaths older than a minute forgotten.
 */
export function restartAfterDeath(deaths: readonly number[], now: number): { deaths: number[]; waitMs?: number } {
  const recent = [...deaths.filter((time) => now - time < MINUTE_MS), now];
  return recent.length > RESTARTS_PER_MINUTE ? { deaths: recent } : { deaths: recent, waitMs: RESTART_DELAY_MS * 2 ** (recent.length - 1) };
}

/**
 * The registry and Redis every worker shares, or SERVE_CLUSTER_INVALID naming what is missing:
 * workers are processes, and LevelDB is held by one, in-process MQTT routing reaches one.
 */
export function sharedBackends(asked: string, registryUrl: string | undefined, clusterRedis: string | undefined): { registryUrl: string; clusterRedis: string } {
  if (registryUrl !== undefined && clusterRedis !== undefined) return { registryUrl, clusterRedis };
  const missing = [
    ...(registryUrl === undefined ? ['the registry on PostgreSQL (--registry postgres://..., $FLEETGATE_REGISTRY_URL or config.json registry.url)'] : []),
    ...(clusterRedis === undefined ? ['Redis (--cluster-redis redis://..., $FLEETGATE_CLUSTER_REDIS or config.json cluster.redis)'] : []),
  ];
  throw new ClusterError('SERVE_CLUSTER_INVALID', `${asked} runs worker processes that share the registry and MQTT: missing ${missing.join(' and ')} (docs/cluster.md)`);
}

/** A running pool of workers. */
export interface WorkerPool {
  readonly estUrl: string;
  readonly mqttUrl: string;
  readonly adminUrl: string;
  readonly metricsUrl: string;
  /**
   * Rejects when the pool gives up on a worker that keeps dying: with the worker's own error when
   * its last start failed with a code, else SERVE_WORKER_FAILED. The caller closes the pool then.
   */
  readonly failed: Promise<never>;
  /** `/readyz` answers 503 at once, then (after the drain) every worker stops gracefully; the metrics listener closes last. */
  close(): Promise<void>;
}

/** Where a slot is: `down` from the moment its worker is gone until the primary has decided what next. */
type SlotState = 'starting' | 'running' | 'down' | 'restarting' | 'stopping' | 'stopped';

/** One place of the pool: a worker process, or the wait before the next one. */
interface Slot {
  readonly index: number;
  readonly name: string;
  readonly spec: WorkerSpec;
  state: SlotState;
  worker?: Worker;
  /** Whether a worker of this slot has started once (a later failure at start is a restart's). */
  everStarted: boolean;
  /** The last failure a worker reported at start. */
  lastFailure?: { readonly code?: string; readonly message: string };
  /** When workers of this slot died unexpectedly, within the last minute. */
  deaths: number[];
  restartTimer?: NodeJS.Timeout;
  /** Questions asked of its worker and not answered yet, by id. */
  readonly questions: Map<number, (message: WorkerMessage | undefined) => void>;
}

/** A message of a worker by its type. */
type Answer<Type extends WorkerMessage['type']> = Extract<WorkerMessage, { type: Type }>;

/**
 * Starts the pool: the metrics listener first (a taken port fails before any fork), then N
 * workers; resolves once every worker listens. A worker that fails at start stops the others and
 * rejects with its error (its own code: SERVE_CLUSTER_UNREACHABLE, SERVE_LISTEN_FAILED, ...).
 */
export async function startWorkerPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const { logger } = options;
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: FLEETGATE_BIN, args: ['serve'] });

  const metrics = new WorkerPoolMetrics();
  const health = new HealthState();
  let nextQuestion = 0;
  let closing: Promise<void> | undefined;
  let fail: (error: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // Nobody may be listening yet (or any more): the rejection is read through `failed` or not at all.
  failed.catch(() => undefined);

  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({
    index,
    name: workerName(index),
    spec: {
      index,
      nodeId: `${options.nodeId}-${workerName(index)}`,
      dataDir: options.dataDir,
      registryUrl: options.registryUrl,
      clusterRedis: options.clusterRedis,
      listen: { host: options.listen.host, estPort: options.listen.estPort, mqttPort: options.listen.mqttPort, adminPort: options.listen.adminPort },
    },
    state: 'starting',
    everStarted: false,
    deaths: [],
    questions: new Map(),
  }));

  /** Asks a running worker; undefined when it is not running or does not answer in time. */
  const ask = <Type extends PrimaryMessage['type']>(slot: Slot, type: Type): Promise<Answer<Type> | undefined> => {
    const worker = slot.worker;
    if (slot.state !== 'running' || !worker?.isConnected()) return Promise.resolve(undefined);
    const id = ++nextQuestion;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), CHECK_TIMEOUT_MS);
      const settle = (message: WorkerMessage | undefined): void => {
        clearTimeout(timer);
        slot.questions.delete(id);
        resolve(message as Answer<Type> | undefined);
      };
      slot.questions.set(id, settle);
      worker.send({ type, id } as PrimaryMessage, (error: Error | null) => {
        if (error) settle(undefined);
      });
    });
  };

  // /readyz: ready when every worker is running and answers ready itself.
  for (const slot of slots) {
    health.add({
      name: slot.name,
      check: async () => {
        if (slot.state !== 'running') return slot.state;
        const answer = await ask(slot, 'fleetgate:readiness');
        // Gone while asked: say so, not that it did not answer.
        if (!answer) return slot.state === 'running' ? 'no answer' : slot.state;
        return answer.readiness.status === 200 ? 'ok' : answer.readiness.body.notReady.join(',');
      },
    });
  }
  const readiness = {
    async readiness(): Promise<Readiness> {
      const answer = await health.readiness();
      const workers = slots.map((slot) => ({ worker: slot.name, node: slot.spec.nodeId, pid: slot.worker?.process.pid, state: slot.state }));
      return { ...answer, body: { ...answer.body, workers } } as Readiness;
    },
  };

  // /metrics: every running worker's registry, summed (aggregators per metric), with the primary's.
  const source: MetricsSource = {
    contentType: metrics.registry.contentType,
    async metrics() {
      const answers = await Promise.all(slots.map((slot) => ask(slot, 'fleetgate:metrics')));
      slots.forEach((slot, index) => {
        const answer = answers[index];
        metrics.up.set({ worker: slot.name }, answer ? 1 : 0);
        metrics.mqttConnections.set({ worker: slot.name }, answer ? mqttConnections(answer.metrics) : 0);
      });
      const registries: WorkerMetrics[] = answers.flatMap((answer) => (answer ? [answer.metrics] : []));
      registries.push(await metrics.registry.getMetricsAsJSON());
      return AggregatorRegistry.aggregate(registries).metrics();
    },
  };
  const metricsServer = createMetricsServer(source, logger.child({ component: 'metrics' }), readiness);
  const metricsHost = options.listen.metricsHost ?? options.listen.host;
  const metricsPort = await listen(metricsServer.server, options.listen.metricsPort, metricsHost);

  let started: (urls: Answer<'fleetgate:started'>) => void = () => undefined;
  const firstStarted = new Promise<Answer<'fleetgate:started'>>((resolve) => {
    started = resolve;
  });
  let running = 0;

  const fork = (slot: Slot): void => {
    slot.state = 'starting';
    slot.lastFailure = undefined;
    const worker = cluster.fork({ [WORKER_SPEC_ENV]: JSON.stringify(slot.spec) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isFleetgateMessage<WorkerMessage>(message)) return;
      if (message.type === 'fleetgate:started') {
        if (slot.worker !== worker || slot.state !== 'starting') return;
        slot.state = 'running';
        logger.info({ worker: slot.name, workerPid: worker.process.pid, nodeId: slot.spec.nodeId, restart: slot.everStarted }, 'worker started');
        if (!slot.everStarted) {
          slot.everStarted = true;
          if (++running === slots.length) started(message);
        }
      } else if (message.type === 'fleetgate:failed') {
        slot.lastFailure = { code: message.code, message: message.message };
      } else {
        slot.questions.get(message.id)?.(message);
      }
    });
    // A worker's last messages (its failure at start) may still be in the pipe when its exit is
    // reported: it is dead once the IPC channel has closed too (or soon after the exit without).
    let disconnected = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const gone = (): void => {
      if (slot.worker !== worker) return;
      // Not ready from the first sign, and nobody waits for answers that will not come.
      if (slot.state === 'running') slot.state = 'down';
      for (const settle of slot.questions.values()) settle(undefined);
    };
    const dead = (): void => {
      if (!exit) return;
      clearTimeout(timer);
      exited(slot, worker, exit.code, exit.signal);
    };
    worker.on('disconnect', () => {
      disconnected = true;
      gone();
      dead();
    });
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exit = { code, signal };
      gone();
      if (disconnected) dead();
      else timer = setTimeout(dead, 1_000);
    });
  };

  const exited = (slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const pid = worker.process.pid;
    if (closing) {
      slot.state = 'stopped';
      return;
    }
    const failure = slot.lastFailure;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (!slot.everStarted) {
      // At start: the settings, the data directory or a backend is wrong. Retrying would not help.
      slot.state = 'stopped';
      logger.error({ worker: slot.name, workerPid: pid, code: failure?.code, exit: code, signal }, 'worker failed at start');
      fail(failure?.code ? new WorkerError(failure.code, failure.message) : new ClusterError('SERVE_WORKER_FAILED', `worker ${slot.name} exited (${how}) before it listened${failure ? `: ${failure.message}` : ''}`));
      return;
    }
    const next = restartAfterDeath(slot.deaths, Date.now());
    slot.deaths = next.deaths;
    if (next.waitMs === undefined) {
      slot.state = 'stopped';
      logger.error({ worker: slot.name, workerPid: pid, exit: code, signal, deaths: slot.deaths.length }, 'worker keeps dying; giving up');
      const message = `worker ${slot.name} died ${slot.deaths.length} times within a minute (last: ${how}${failure ? `, ${failure.code ?? 'at start'}: ${failure.message}` : ''})`;
      fail(failure?.code ? new WorkerError(failure.code, message) : new ClusterError('SERVE_WORKER_FAILED', message));
      return;
    }
    const waitMs = next.waitMs;
    slot.state = 'restarting';
    logger.error({ worker: slot.name, workerPid: pid, exit: code, signal, code: failure?.code, restartInMs: waitMs, deathsInLastMinute: slot.deaths.length }, 'worker died; restarting it');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (closing) return;
      metrics.restarts.inc({ worker: slot.name });
      fork(slot);
    }, waitMs);
  };

  const stopWorkers = async (): Promise<void> => {
    await Promise.all(
      slots.map(async (slot) => {
        clearTimeout(slot.restartTimer);
        const worker = slot.worker;
        if (!worker || worker.process.exitCode !== null || worker.process.signalCode !== null) {
          slot.state = 'stopped';
          return;
        }
        slot.state = 'stopping';
        const exit = new Promise<void>((resolve) => worker.process.once('exit', () => resolve()));
        // SIGTERM, as for a single `fleetgate serve`: the worker finishes its in-flight requests.
        worker.process.kill('SIGTERM');
        const timer = setTimeout(() => {
          logger.warn({ worker: slot.name, workerPid: worker.process.pid }, 'worker did not stop in time; killing it');
          worker.process.kill('SIGKILL');
        }, STOP_TIMEOUT_MS);
        await exit;
        clearTimeout(timer);
        slot.state = 'stopped';
      }),
    );
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      health.beginShutdown();
      if (options.drainMs > 0 && running === slots.length) {
        logger.info({ drainMs: options.drainMs }, 'not ready: draining before the workers stop');
        await delay(options.drainMs);
      }
      await stopWorkers();
      logger.info('workers stopped');
      await metricsServer.close();
    })();
    return closing;
  };

  for (const slot of slots) fork(slot);
  let urls: Answer<'fleetgate:started'>;
  try {
    urls = await Promise.race([firstStarted, failed]);
  } catch (error) {
    await close();
    throw error;
  }
  const metricsUrl = `http://${urlHost(metricsHost)}:${metricsPort}/metrics`;
  logger.info({ estUrl: urls.estUrl, mqttUrl: urls.mqttUrl, adminUrl: urls.adminUrl, metricsUrl, dataDir: options.dataDir, workers: slots.length }, 'fleetgate listening');
  return { estUrl: urls.estUrl, mqttUrl: urls.mqttUrl, adminUrl: urls.adminUrl, metricsUrl, failed, close };
}

/** MQTT clients a worker holds: its connected devices and services gauges. */
function mqttConnections(registry: WorkerMetrics): number {
  return registry
    .filter((metric) => metric.name === 'fleetgate_mqtt_connected_devices' || metric.name === 'fleetgate_mqtt_connected_services')
    .reduce((sum, metric) => sum + metric.values.reduce((total, value) => total + value.value, 0), 0);
}
