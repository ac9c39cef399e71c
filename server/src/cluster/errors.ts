import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** Cluster settings that cannot work, or a Redis that does not answer at start (docs/errors.md, "Operator"). */
export class ClusterError extends FleetgateError<OperatorCode<'SERVE_CLUSTER_INVALID' | 'SERVE_CLUSTER_UNREACHABLE'>> {
  override readonly name = 'ClusterError';
}
