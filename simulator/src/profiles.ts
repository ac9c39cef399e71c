import type { FleetDevice } from '@fleetgate/device-sdk';

/** Behaviour of one kind of device once it is connected. */
export interface DeviceProfile {
  readonly model: string;
  /** Starts the device's traffic; returns a function that stops it. */
  run(device: FleetDevice, io: ProfileIo): () => void;
}

/** What a profile may do: publish (measured) and schedule. */
export interface ProfileIo {
  publish(subtopic: string, payload: string | Buffer, qos: 0 | 1): void;
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
          io.publish('telemetry', JSON.stringify({ temperature: Number(temperature.toFixed(2)), humidity: Math.round(35 + io.random() * 20) }), 1);
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
          io.publish('events/motion', JSON.stringify({ at: new Date().toISOString(), frames }), 1);
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
        io.publish('position', JSON.stringify({ latitude: Number(latitude.toFixed(5)), longitude: Number(longitude.toFixed(5)), speed: Math.round(20 + io.random() * 90) }), 0);
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
