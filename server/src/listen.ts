import { DEFAULT_PORTS } from '@fleetgate/device-sdk/protocol';

/** Where the listeners bind. Port 0 picks a free port (tests). */
export interface ListenOptions {
  readonly host: string;
  readonly estPort: number;
  readonly mqttPort: number;
  readonly adminPort: number;
  readonly metricsPort: number;
  /** Where metrics listen; loopback unless told otherwise (they reveal fleet size). */
  readonly metricsHost?: string;
}

export const DEFAULT_LISTEN: ListenOptions = {
  host: '127.0.0.1',
  estPort: DEFAULT_PORTS.est,
  mqttPort: DEFAULT_PORTS.mqtt,
  adminPort: DEFAULT_PORTS.admin,
  metricsPort: DEFAULT_PORTS.metrics,
};
