import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** Cluster settings that cannot work, a Redis that does not answer at start, workers that keep dying (docs/errors.md, "Operator"). */
export class ClusterError extends FleetgateError<OperatorCode<'SERVE_CLUSTER_INVALID' | 'SERVE_CLUSTER_UNREACHABLE' | 'SERVE_WORKER_FAILED'>> {
  override readonly name = 'ClusterError';
}

/**
 * The error a worker process of `fleetgate serve --workers N` failed with at start, relayed by the
 * primary with the worker's own code and message (SERVE_CLUSTER_UNREACHABLE, DATA_NOT_INITIALIZED,
 * SERVE_LISTEN_FAILED, ...): the operator sees what went wrong, not that "a worker" failed. The
 * code is one the worker's catalogues define; the primary cannot narrow it further.
 */
export class WorkerError extends FleetgateError {
  override readonly name = 'WorkerError';
}
