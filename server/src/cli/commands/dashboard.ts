import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { integerOption, type Command } from '../args.ts';
import { adminCommand } from '../admin-command.ts';
import { CliError } from '../errors.ts';
import { print } from '../format.ts';

/** The dashboard listens on this address only: the operator's own machine. */
const HOST = '127.0.0.1';

/** Opens `url` in the desktop's browser; a failure is reported, never fatal (the URL is printed). */
function openBrowser(url: string, warn: (message: string) => void): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  child.on('error', (error) => warn(`could not open a browser (${error.message}): open the URL above`));
  child.unref();
}

async function listenLocal(server: Server, port: number): Promise<number> {
  server.listen(port, HOST);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
  } catch (error) {
    throw new CliError('CLI_DASHBOARD_LISTEN_FAILED', `cannot listen on ${HOST}:${port}: ${(error as Error).message} (choose another --port)`, { cause: error });
  }
  return (server.address() as AddressInfo).port;
}

/** `fleetgate dashboard [--port P] [--open]`: the operator web UI over the admin API. */
export const dashboardCommand: Command = adminCommand({
  path: ['dashboard'],
  usage: '[--port P] [--open]',
  description: `Runs the operator dashboard on this machine: a web UI (overview, devices, manufacturer
trusts, audit, live events) served on http://${HOST}:P only, talking to the admin API with
the operator certificate, which stays on this machine's disk. Prints the URL to open, with a
random token made for this run: every request needs it (a cookie after the first visit), and
anything else gets 401. Runs until SIGINT (Ctrl-C) or SIGTERM. Logs go to stderr (JSON lines).
See docs/dashboard.md.`,
  options: { port: { type: 'string' }, open: { type: 'boolean' } },
  optionsHelp: `  --port P            port on ${HOST} (default: a free port, printed)
  --open              also open the URL in the desktop's browser`,
  positionals: [],
  async run({ values, connect }) {
    const port = integerOption(values, 'port', 0, 0, 65_535);
    const { loadAssets } = await import('../../dashboard/assets.ts');
    const assets = await loadAssets();
    const client = await connect();
    const { createLogger } = await import('../../logger.ts');
    const logger = createLogger({ name: 'fleetgate-dashboard', fd: 2 });
    const { DashboardAccess } = await import('../../dashboard/access.ts');
    const { LiveFeed } = await import('../../dashboard/live-feed.ts');
    const { createDashboardServer } = await import('../../dashboard/dashboard-server.ts');

    // Signals are taken from the start, so a Ctrl-C while starting still stops cleanly.
    let stop: (signal: NodeJS.Signals) => void = () => undefined;
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      stop = resolve;
    });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const access = new DashboardAccess();
    const feed = new LiveFeed(client, logger);
    const server = createDashboardServer({ access, admin: client, feed, assets, logger });
    try {
      const bound = await listenLocal(server, port);
      access.listeningOn(bound);
      await feed.start();
      const url = `http://${HOST}:${bound}/?token=${access.token}`;
      print(`fleetgate dashboard for ${client.where}: ${url}`);
      logger.info({ port: bound, admin: client.where }, 'dashboard listening');
      if (values.open === true) openBrowser(url, (message) => logger.warn(message));
      const signal = await stopped;
      logger.info({ signal }, 'shutting down');
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await feed.close();
      // Live streams never end by themselves: close them with the listener.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      logger.flush();
    }
    return 0;
  },
});
