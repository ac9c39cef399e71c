import { startDaemon } from '../daemon.ts';
import { freePort } from '../free-port.ts';
import { serverCommand, type Pinning } from '../pinning.ts';
import { waitForConnack, type BrokerUnderTest } from './broker-under-test.ts';
import type { BrokerFleet } from './fleet.ts';

const SERVER_SCRIPT = new URL('./node-tls-floor-server.ts', import.meta.url).pathname;
// Resolved here so the floor server finds tsx wherever the benchmark is started from.
const TSX_LOADER = import.meta.resolve('tsx');

/**
 * Starts node-tls-floor-server.ts (a bare Node TLS server with the broker's TLS settings and a
 * minimal MQTT responder) on a free port, pinned like the brokers. What fleetgate costs above it
 * is aedes and fleetgate's own work; below it is Node's TLS, which no code in fleetgate can avoid.
 */
export async function startNodeTlsFloor(options: { readonly fleet: BrokerFleet; readonly pinning: Pinning; readonly nodeArgs?: readonly string[] }): Promise<BrokerUnderTest> {
  const port = await freePort();
  const command = serverCommand(options.pinning, process.execPath, [...(options.nodeArgs ?? []), '--import', TSX_LOADER, SERVER_SCRIPT, options.fleet.dataDir, String(port)]);
  const daemon = startDaemon('node TLS floor server', command.file, command.args);
  const address = { host: '127.0.0.1', port } as const;
  try {
    await waitForConnack(daemon, address, options.fleet.service);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return { kind: 'node TLS floor', address, daemon, settings: ['TLS_SERVER_DEFAULTS, client CAs root and issuing, no broker'] };
}
