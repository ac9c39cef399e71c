import { AdminError } from '../errors.ts';
import { sendJson } from '../http.ts';
import type { FleetSummary } from '../wire.ts';
import type { AdminRoute } from './types.ts';

/** How often an idle event stream sends a comment, so proxies and clients see it is alive. */
const KEEPALIVE_MS = 15_000;

/**
 * GET /v1/summary — devices by state and model and the devices connected now, from counts the
 * server keeps current (the metrics census and the broker's session table): constant time,
 * whatever the fleet's size, no registry scan.
 */
export const fleetSummary: AdminRoute = {
  method: 'GET',
  path: '/v1/summary',
  async handle({ response }, context) {
    const { fleet } = context;
    if (!fleet) throw new AdminError('ADMIN_UNAVAILABLE', 'this server keeps no fleet counts');
    const devices = fleet.census().filter((entry) => entry.count > 0);
    sendJson(response, 200, {
      devices,
      total: devices.reduce((sum, entry) => sum + entry.count, 0),
      connected: fleet.connectedDevices(),
      time: new Date().toISOString(),
    } satisfies FleetSummary);
  },
};

/**
 * GET /v1/events — server-sent events (HTML Living Standard §9.2): each session that starts or
 * ends on this process's broker and each refused connection of a registered device, as
 * `event: <type>` and `data: <JSON>`. The stream ends when the server shuts down; nothing is
 * replayed (presence and device history hold what happened before).
 */
export const liveEvents: AdminRoute = {
  method: 'GET',
  path: '/v1/events',
  async handle({ request, response }, context) {
    const { fleet } = context;
    if (!fleet) throw new AdminError('ADMIN_UNAVAILABLE', 'this server has no live event feed');
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    // A first comment, so the client knows the stream is open before any event.
    response.write(': fleetgate live events\n\n');
    const keepalive = setInterval(() => response.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    const end = (): void => {
      clearInterval(keepalive);
      unsubscribe();
      response.end();
    };
    const unsubscribe = fleet.live.subscribe((event) => {
      response.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    }, end);
    request.socket.setTimeout(0);
    await new Promise<void>((resolve) => {
      response.once('close', () => {
        clearInterval(keepalive);
        unsubscribe();
        resolve();
      });
    });
  },
};
