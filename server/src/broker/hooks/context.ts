import type { IssuingCa } from '../peer-identity.ts';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../../config/config.ts';
import type { DeviceAccess } from '../device-access.ts';
import type { DeviceHistoryRecorder } from '../device-history.ts';
import type { LiveEventSink } from '../../live-events.ts';
import type { BrokerErrorCode } from '../errors.ts';
import type { RetainedQuota } from '../retained-quota.ts';
import type { SessionTable } from '../sessions.ts';
import type { TopicGrantTable } from '../topic-acl.ts';

/** What every broker hook needs. */
export interface HookContext {
  readonly issuing: IssuingCa;
  readonly access: DeviceAccess;
  readonly sessions: SessionTable;
  readonly config: BrokerConfig;
  /** The topic rules of every model and service, compiled once for all their sessions. */
  readonly grants: TopicGrantTable;
  readonly logger: Logger;
  /** Counts a refusal by code (metrics). */
  readonly refused: (code: BrokerErrorCode) => void;
  /** Number of connected clients right now. */
  readonly connectedClients: () => number;
  /** Who holds which retained message (the caps on them). */
  readonly retained: RetainedQuota;
  /** Refusals and drops of verified devices, for their history (not the audit log). */
  readonly history: DeviceHistoryRecorder;
  /** The live feed of the admin API (refused connections of registered devices), when one is wired. */
  readonly live?: LiveEventSink;
  /** Called after the retained messages changed (gauges). */
  readonly retainedChanged: () => void;
}
