import type { FactoryCredential } from './credentials.ts';
import type { Counters } from './recorder.ts';
import type { TrafficSettings } from './profiles.ts';

/** What the main thread gives a worker: its share of the fleet and how to run it. */
export interface WorkerInput {
  readonly devices: readonly FactoryCredential[];
  readonly rootPem: string;
  readonly estUrls: readonly string[];
  readonly mqttUrls: readonly string[];
  readonly ratePerSecond: number;
  readonly sourceAddresses: readonly string[];
  readonly traffic: TrafficSettings;
  readonly persistentSessions: boolean;
  readonly durationMs: number;
  readonly settleMs: number;
}

/** Messages from a worker. */
export type WorkerMessage =
  | { readonly type: 'tick'; readonly counters: Counters; readonly states: Record<string, number>; readonly connectedPerNode: Record<string, number>; readonly errorsByCode: Record<string, number> }
  | {
      readonly type: 'done';
      readonly counters: Counters;
      /** Devices connected to each MQTT endpoint just before the worker stopped them. */
      readonly connectedPerNode: Record<string, number>;
      readonly errorsByCode: Record<string, number>;
      readonly enroll: readonly number[];
      readonly connect: readonly number[];
      readonly publishAck: readonly number[];
      /** ms since the worker started when its last device first connected; null if not all did. */
      readonly allConnectedAtMs: number | null;
    }
  | { readonly type: 'error'; readonly message: string };
