import type { Logger } from 'pino';
import type { ListenerGuardReporting } from '../tls/listener-guard.ts';
import type { Metrics } from './metrics.ts';

/**
 * How a listener guard reports: `fleetgate_listener_sockets_closed_total{listener,code}`,
 * `fleetgate_listener_pending_connections{listener}`, and a debug log line per closed socket
 * (a flood of them must not flood the log at the default level).
 */
export function listenerReporting(metrics: Metrics, logger: Logger): ListenerGuardReporting {
  return {
    closed: (listener, code) => metrics.listenerSocketsClosed.inc({ listener, code }),
    pending: (listener, count) => metrics.listenerPendingConnections.set({ listener }, count),
    log: (fields) => logger.debug(fields, 'listener closed a socket'),
  };
}
