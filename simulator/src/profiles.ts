import type { FleetDevice } from '@fleetgate/device-sdk';

/** Behaviour of one kind of device once it is connected. */
export interface DeviceProfile {
  readonly model: string;
  /** Starts the device's traffic; returns a function that stops it. */
  run(device: FleetDevice, io: ProfileIo): () => void;
}

/**
 * What a message says: a JSON object, or bytes (a camera frame). The runner numbers every
 * message of a device ({@link encodePayload}), so a consumer can tell which ones arrived.
 */
export type MessageContent = Readonly<Record<string, unknown>> | Buffer;

/** What a profile may do: publish (measured) and schedule. */
export interface ProfileIo {
  publish(subtopic: string, content: MessageContent, qos: 0 | 1): void;
  every(ms: number, action: () => void): void;
  after(ms: number, action: () => void): void;
  random(): number;
}

/** How often devices talk; `scale` multiplies every interval (0.1 = ten times as chatty). */
export interface TrafficSettings {
  readonly thermostatIntervalMs: number;
  readonly cameraEventMeanMs: number;
  readonly cameraBurst: readonly [number, number];
  readonly cameraPayloadBytes: readonly [number, number];
  readonly carIntervalMs: number;
  readonly carDrivingMs: number;
  readonly carParkedMs: number;
  readonly scale: number;
}

export const DEFAULT_TRAFFIC: TrafficSettings = {
  thermostatIntervalMs: 60_000,
  cameraEventMeanMs: 30_000,
  cameraBurst: [3, 6],
  cameraPayloadBytes: [4096, 32_768],
  carIntervalMs: 1000,
  carDrivingMs: 60_000,
  carParkedMs: 30_000,
  scale: 1,
};

/**
 * The payload of a device's `seq`-th message (1, 2, 3 ... across all its topics): a JSON object
 * gets a `seq` field first; bytes get a first line `{"seq":n}` before them.
 */
export function encodePayload(content: MessageContent, seq: number): string | Buffer {
  if (Buffer.isBuffer(content)) return Buffer.concat([Buffer.from(`{"seq":${seq}}\n`), content]);
  return JSON.stringify({ seq, ...content });
}

/** The message number a simulated device's payload carries (see {@link encodePayload}); undefined for anything else. */
export function payloadSeq(payload: Buffer): number | undefined {
  const end = payload.indexOf(0x0a);
  try {
    const seq = (JSON.parse(payload.subarray(0, end === -1 ? payload.length : end).toString('utf8')) as { seq?: unknown }).seq;
    return typeof seq === 'number' && Number.isInteger(seq) && seq > 0 ? seq : undefined;
  } catch {
    return undefined;
  }
}

const between = (io: ProfileIo, [low, high]: readonly [number, number]): number => Math.floor(low + io.random() * (high - low + 1));

/** A small JSON reading every interval; listens for commands. */
export function thermostat(settings: TrafficSettings): DeviceProfile {
  return {
    model: 'thermostat',
    run(device, io) {
      let temperature = 18 + io.random() * 6;
      void device.subscribe('commands/#').catch(() => undefined);
      // First reading soon after connecting (spread), then every interval.
      io.after(io.random() * settings.thermostatIntervalMs * settings.scale, () => {
        const report = (): void => {
          temperature += (io.random() - 0.5) * 0.4;
          io.publish('telemetry', { temperature: Number(temperature.toFixed(2)), humidity: Math.round(35 + io.random() * 20) }, 1);
        };
        report();
        io.every(settings.thermostatIntervalMs * settings.scale, report);
      });
      return () => undefined;
    },
  };
}

/** Motion events at random (exponential gaps), each a burst of larger frames. */
export function camera(settings: TrafficSettings): DeviceProfile {
  return {
    model: 'camera',
    run(_device, io) {
      let stopped = false;
      const next = (): void => {
        if (stopped) return;
        const gap = -Math.log(1 - io.random()) * settings.cameraEventMeanMs * settings.scale;
        io.after(gap, () => {
          const frames = between(io, settings.cameraBurst);
          io.publish('events/motion', { at: new Date().toISOString(), frames }, 1);
          for (let frame = 0; frame < frames; frame++) io.publish('events/frame', Buffer.alloc(between(io, settings.cameraPayloadBytes), frame), 1);
          next();
        });
      };
      next();
      return () => {
        stopped = true;
      };
    },
  };
}

/** Position and speed every second while driving; parked periods are quiet. */
export function car(settings: TrafficSettings): DeviceProfile {
  return {
    model: 'car',
    run(_device, io) {
      let driving = io.random() < 0.7;
      let latitude = 48.1 + io.random() * 0.1;
      let longitude = 11.5 + io.random() * 0.1;
      io.every(settings.carIntervalMs * settings.scale, () => {
        if (!driving) return;
        latitude += (io.random() - 0.5) * 0.001;
        longitude += (io.random() - 0.5) * 0.001;
        io.publish('position', { latitude: Number(latitude.toFixed(5)), longitude: Number(longitude.toFixed(5)), speed: Math.round(20 + io.random() * 90) }, 0);
      });
      const toggle = (): void => {
        driving = !driving;
        io.after((driving ? settings.carDrivingMs : settings.carParkedMs) * settings.scale, toggle);
      };
      io.after((driving ? settings.carDrivingMs : settings.carParkedMs) * settings.scale * io.random(), toggle);
      return () => undefined;
    },
  };
}

/** The built-in profiles by model name. */
export function profiles(settings: TrafficSettings): ReadonlyMap<string, DeviceProfile> {
  return new Map([thermostat(settings), camera(settings), car(settings)].map((profile) => [profile.model, profile]));
}
