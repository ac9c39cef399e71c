/**
 * @fleetgate/server as a library: embed the whole server (EST, MQTT broker, admin API, metrics)
 * in a Node program, or initialise a data directory, the way `fleetgate init` and `fleetgate
 * serve` do. The `fleetgate` command is the usual way in; this is for programs that own the
 * process (tests of a product built on fleetgate, a custom launcher).
 */
export { startServer, DEFAULT_LISTEN, SHUTDOWN_GRACE_MS, LISTEN_BACKLOG, type ListenOptions, type StartOptions, type RunningServer } from './server.ts';
export { initDataDir, InitError, type InitOptions, type InitReport } from './datadir/init.ts';
export { loadConfig, mergeConfig, DEFAULT_CONFIG, ConfigError, type ServerConfig, type BrokerConfig, type BrokerLimits, type EnrollmentPolicy, type EstLimits, type ModelPolicy, type TopicPolicy } from './config/config.ts';
export type {
  Registry,
  DeviceRecord,
  DeviceState,
  CertificateRecord,
  CertificateStatus,
  RevocationReason,
  AuditEntry,
  AuditEvent,
  AuditType,
  AuditVerification,
  PresenceRecord,
  TrustRecord,
} from './registry/types.ts';
export { RegistryError } from './registry/errors.ts';
export { createLogger, type Logger } from './logger.ts';
