import type { AddressInfo, Server } from 'node:net';
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

/** The listen backlog of every listener: connection storms must queue, not be refused. */
export const LISTEN_BACKLOG = 4096;

/**
 * Listens with {@link LISTEN_BACKLOG}; resolves with the port (the one picked for port 0). In a
 * worker of node:cluster the primary holds the socket: it listens with the worker's backlog, and
 * the n-th `listen(0)` of every worker on one host gets the same port, so the workers share them.
 */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** How a URL names a host: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
