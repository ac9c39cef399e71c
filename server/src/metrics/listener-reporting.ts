import type { Logger } from 'pino';
import type { ListenerGuardReporting, ListenerName } from '../tls/listener-guard.ts';
import type { Metrics } from './metrics.ts';

/**
 * How a listener guard reports: `fleetgate_listener_sockets_closed_total{listener,code}`,
 * `fleetgate_listener_pending_connections{listener}`, and a debug log line per closed socket
 * (a flood of them must not flood the log at the default level).
 */
export function listenerReporting(metrics: Metrics, logger: Logger): ListenerGuardReporting {
  const shedLog = new Map<ListenerName, { lastAt: number; since: number }>();
  return {
    closed: (listener, code) => metrics.listenerSocketsClosed.inc({ listener, code }),
    pending: (listener, count) => metrics.listenerPendingConnections.set({ listener }, count),
    log: (fields) => {
      if (fields.code !== 'TLS_LOAD_SHED') {
        logger.debug(fields, 'listener closed a socket');
        return;
      }
      // An operator must learn that the node sheds, but a storm sheds thousands a second: one
      // warning per listener per SHED_LOG_MS, with the count since the last one.
      const state = shedLog.get(fields.listener) ?? { lastAt: 0, since: 0 };
      state.since++;
      const now = Date.now();
      if (now - state.lastAt >= SHED_LOG_MS) {
        logger.warn({ listener: fields.listener, code: fields.code, shed: state.since }, 'load shed: new connections refused before the TLS handshake');
        state.lastAt = now;
        state.since = 0;
      }
      shedLog.set(fields.listener, state);
    },
    handshake: (listener, resumed) => metrics.tlsHandshakes.inc({ listener, kind: resumed ? 'resumed' : 'full' }),
  };
}

/** At most one load-shed warning per listener in this time, in ms. */
const SHED_LOG_MS = 10_000;
