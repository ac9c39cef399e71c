import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus metric fleetgate exports, in one place so names stay consistent.
 * One instance per server (tests start several servers in one process).
 *
 * Under `fleetgate serve --workers N` the primary sums each series over the workers
 * (prom-client's `AggregatorRegistry.aggregate`): what a worker counts or holds itself adds up to
 * the node's. The gauges every worker computes over the whole registry take the `max` instead.
 */
export class Metrics {
  readonly registry = new PromRegistry();

  readonly enrollments = new Counter({
    name: 'fleetgate_enrollments_total',
    help: 'EST enrollment requests by operation, result and error code',
    labelNames: ['operation', 'result', 'code'] as const,
    registers: [this.registry],
  });

  readonly enrollmentDuration = new Histogram({
    name: 'fleetgate_enrollment_duration_seconds',
    help: 'Time to process an EST issuance request (parse, verify, sign, record)',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  readonly enrollmentRefusalsUnaudited = new Counter({
    name: 'fleetgate_enrollment_refusals_unaudited_total',
    help: 'EST refusals kept out of the audit log: anonymous (no client certificate), unverified (certificate not from a trusted CA), audit-rate (over est.auditRefusalsPerSourcePerMinute)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly mqttConnected = new Gauge({
    name: 'fleetgate_mqtt_connected_devices',
    help: 'Devices connected to the MQTT broker now',
    registers: [this.registry],
  });

  readonly mqttConnectedServices = new Gauge({
    name: 'fleetgate_mqtt_connected_services',
    help: 'Backend service clients connected to the MQTT broker now',
    registers: [this.registry],
  });

  readonly mqttConnects = new Counter({
    name: 'fleetgate_mqtt_connects_total',
    help: 'Accepted MQTT connections (devices and services)',
    registers: [this.registry],
  });

  readonly mqttRefusals = new Counter({
    name: 'fleetgate_mqtt_refusals_total',
    help: 'MQTT refusals (connections, publishes, subscriptions) by reason code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly mqttMessagesIn = new Counter({
    name: 'fleetgate_mqtt_messages_in_total',
    help: 'PUBLISH packets received from clients (devices and services)',
    registers: [this.registry],
  });

  readonly mqttMessagesOut = new Counter({
    name: 'fleetgate_mqtt_messages_out_total',
    help: 'PUBLISH packets delivered to subscribers',
    registers: [this.registry],
  });

  readonly mqttRetainedMessages = new Gauge({
    name: 'fleetgate_mqtt_retained_messages',
    help: 'Retained messages the broker holds now',
    registers: [this.registry],
  });

  readonly mqttRetainedBytes = new Gauge({
    name: 'fleetgate_mqtt_retained_bytes',
    help: 'Bytes (topic + payload) of the retained messages the broker holds now',
    registers: [this.registry],
  });

  readonly listenerSocketsClosed = new Counter({
    name: 'fleetgate_listener_sockets_closed_total',
    help: 'Sockets a TLS listener closed before they finished the handshake (MQTT: the CONNECT), by listener and TLS_* code',
    labelNames: ['listener', 'code'] as const,
    registers: [this.registry],
  });

  readonly tlsHandshakes = new Counter({
    name: 'fleetgate_tls_handshakes_total',
    help: 'TLS handshakes completed by a listener, by listener and kind: full, or resumed from a session ticket',
    labelNames: ['listener', 'kind'] as const,
    registers: [this.registry],
  });

  readonly listenerPendingConnections = new Gauge({
    name: 'fleetgate_listener_pending_connections',
    help: 'Connections accepted by a TLS listener that have not finished the handshake (MQTT: the CONNECT) yet',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly certificatesExpiringSoon = new Gauge({
    name: 'fleetgate_certificates_expiring_7d',
    help: 'Enrolled devices whose current certificate expires within 7 days',
    registers: [this.registry],
    aggregator: 'max',
  });

  readonly devices = new Gauge({
    name: 'fleetgate_devices',
    help: 'Devices in the registry by state and model (kept current on device changes, not counted per scrape)',
    labelNames: ['state', 'model'] as const,
    registers: [this.registry],
    aggregator: 'max',
  });

  readonly deviceHistoryEvents = new Counter({
    name: 'fleetgate_device_history_events_total',
    help: 'Broker refusals and session drops for the device history: entry (a new history entry), summarised (counted into an open entry), dropped (over broker.limits.historyMaxOpen, not recorded)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly registryWrite = new Histogram({
    name: 'fleetgate_registry_write_seconds',
    help: 'Registry batch write latency (one batch may hold many operations)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'fleetgate_' });
  }
}

/**
 * The metrics of the primary of `fleetgate serve --workers N`, rendered with the workers' sums:
 * its workers, their restarts, and how the MQTT connections are spread over them.
 */
export class WorkerPoolMetrics {
  readonly registry = new PromRegistry();

  readonly up = new Gauge({
    name: 'fleetgate_worker_up',
    help: 'Whether a worker process is up and serving (1) or starting, restarting or stopped (0), by worker (w0, w1, ...)',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  readonly restarts = new Counter({
    name: 'fleetgate_worker_restarts_total',
    help: 'Worker processes restarted after they died, by worker',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  readonly mqttConnections = new Gauge({
    name: 'fleetgate_worker_mqtt_connections',
    help: 'MQTT clients (devices and services) connected to each worker at the last scrape: how the listening port spreads them',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  constructor() {
    // The primary's own CPU and memory count in the node's totals (summed with the workers').
    collectDefaultMetrics({ register: this.registry, prefix: 'fleetgate_' });
  }
}
