import type { FactoryCredential } from './credentials.ts';
import type { Counters } from './recorder.ts';
import type { TrafficSettings } from './profiles.ts';
import type { LoopDelay } from './monitor/loop-delay.ts';

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
  /**
   * When the fleet phase ends, as performance.timeOrigin + performance.now() (ms): a time base
   * every thread shares, unlike performance.now() alone, which counts from each thread's start.
   */
  readonly deadlineAt: number;
  readonly stopTimeoutMs: number;
}

/** Messages from a worker. */
export type WorkerMessage =
  | {
      readonly type: 'tick';
      readonly counters: Counters;
      readonly states: Record<string, number>;
      readonly connectedPerNode: Record<string, number>;
      readonly errorsByCode: Record<string, number>;
      /** The worker's event-loop delay since its previous tick. */
      readonly loopDelay: LoopDelay;
    }
  | {
      readonly type: 'done';
      readonly counters: Counters;
      /** Devices connected to each MQTT endpoint just before the worker stopped them. */
      readonly connectedPerNode: Record<string, number>;
      readonly errorsByCode: Record<string, number>;
      readonly enroll: readonly number[];
      readonly connect: readonly number[];
      readonly publishAck: readonly number[];
      /** When its last device first connected (performance.timeOrigin + performance.now(), ms); null if not all did. */
      readonly allConnectedAt: number | null;
      /** The worker's event-loop delay over its whole run. */
      readonly loopDelayRun: LoopDelay;
      /** Devices it never started (the deadline came first). */
      readonly notStarted: number;
      /** Devices it closed by force at the end of the stop bound. */
      readonly forced: number;
      /** When its fleet phase ended, before it stopped its devices (timeOrigin + now, ms). */
      readonly fleetPhaseEndedAt: number;
    }
  | { readonly type: 'error'; readonly message: string };
