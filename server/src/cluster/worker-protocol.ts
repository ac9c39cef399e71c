import type { Registry as PromRegistry } from 'prom-client';
import type { ListenOptions } from '../listen.ts';
import type { Readiness } from '../metrics/health.ts';

/*
 * What the primary of `fleetgate serve --workers N` and its worker processes say to each other:
 * the worker's orders in its environment, then messages over node:cluster's IPC channel (JSON).
 */

/** The most worker processes `--workers` (and `cluster.workers`) takes. */
export const MAX_WORKERS = 64;

/** Unexpected deaths of one worker tolerated within a minute; one more and the primary gives up (SERVE_WORKER_FAILED). */
export const RESTARTS_PER_MINUTE = 5;

/** The first restart waits this long; each further death within the minute doubles it (1, 2, 4, 8, 16 s). */
export const RESTART_DELAY_MS = 1_000;

/** The environment variable that carries a worker's {@link WorkerSpec} (its presence makes a process a worker). */
export const WORKER_SPEC_ENV = 'FLEETGATE_WORKER';

/** What a worker runs: everything the primary resolved from its flags, environment and config. */
export interface WorkerSpec {
  /** 0 .. N-1: the worker's place in the pool (`w<index>`). */
  readonly index: number;
  /** `<node id>-w<index>`: its name in the cluster (presence, takeover between workers). */
  readonly nodeId: string;
  readonly dataDir: string;
  readonly registryUrl: string;
  readonly clusterRedis: string;
  /** The shared listening ports (metrics: the primary's alone). */
  readonly listen: Omit<ListenOptions, 'metricsPort' | 'metricsHost'>;
}

/** The spec of this process when the primary of `fleetgate serve --workers N` forked it, else undefined. */
export function workerSpec(env: NodeJS.ProcessEnv = process.env): WorkerSpec | undefined {
  const text = env[WORKER_SPEC_ENV];
  // process.send exists only in a process forked with an IPC channel (node:cluster does that).
  return text === undefined || process.send === undefined ? undefined : (JSON.parse(text) as WorkerSpec);
}

/** A worker's name in logs, metrics labels and `/readyz`. */
export function workerName(index: number): string {
  return `w${index}`;
}

/** A worker's metrics as prom-client's `getMetricsAsJSON()` gives them (the input of `AggregatorRegistry.aggregate`). */
export type WorkerMetrics = Awaited<ReturnType<PromRegistry['getMetricsAsJSON']>>;

/**
 * A question from the primary; `id` pairs it with its answer. (The primary stops a worker with
 * SIGTERM, as an operator stops a single `fleetgate serve`.)
 */
export type PrimaryMessage = { readonly type: 'fleetgate:readiness' | 'fleetgate:metrics'; readonly id: number };

/** From a worker. */
export type WorkerMessage =
  /** Every listener listens (the URLs are the shared ports'). */
  | { readonly type: 'fleetgate:started'; readonly estUrl: string; readonly mqttUrl: string; readonly adminUrl: string }
  /** Start failed; `code` when the error has one (the worker exits next). */
  | { readonly type: 'fleetgate:failed'; readonly code?: string; readonly message: string }
  | { readonly type: 'fleetgate:readiness'; readonly id: number; readonly readiness: Readiness }
  | { readonly type: 'fleetgate:metrics'; readonly id: number; readonly metrics: WorkerMetrics };

/** Whether an IPC message is one of fleetgate's (node:cluster and prom-client send their own on the same channel). */
export function isFleetgateMessage<T extends { type: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('fleetgate:');
}
