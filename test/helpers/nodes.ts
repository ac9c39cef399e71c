import type { ExecutionContext } from 'ava';
import { makeDataDir, startFleet, type DataDir, type Fleet } from './fleet.ts';
import { sharedPostgres } from './postgres.ts';
import { waitFor } from './wait.ts';

/** Two nodes of one fleet, and the data directory they share. */
export interface TwoNodes {
  readonly data: DataDir;
  readonly nodes: readonly [Fleet, Fleet];
}

/**
 * Two fleetgate servers on loopback over one data directory (one CA, one server certificate) and
 * one PostgreSQL registry: a device enrolled through one is known to the other, as on the nodes
 * of a cluster. They share no Redis, so a message published on one node reaches subscribers of
 * that node only (the cluster tests start nodes with Redis for that). The test file registers
 * `test.after.always(stopSharedPostgres)`.
 */
export async function startTwoNodes(t: ExecutionContext): Promise<TwoNodes> {
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const data = await makeDataDir(t);
  const first = await startFleet(t, { dataDir: data, registryUrl });
  const second = await startFleet(t, { dataDir: data, registryUrl });
  return { data, nodes: [first, second] };
}

/** Clients connected to a node's broker now (its `fleetgate_mqtt_connected_devices` gauge). */
export async function connectedTo(node: Fleet): Promise<number> {
  return (await node.server.metrics.mqttConnected.get()).values[0]?.value ?? 0;
}

/** Connections a node's broker has accepted since it started (`fleetgate_mqtt_connects_total`): unlike the gauge, it cannot be missed between two polls. */
export async function connectsTo(node: Fleet): Promise<number> {
  return (await node.server.metrics.mqttConnects.get()).values[0]?.value ?? 0;
}

/** Waits until a node's broker counts `count` connected devices (it counts once CONNACK is sent). */
export async function untilConnected(node: Fleet, count: number, timeoutMs?: number): Promise<void> {
  let last = -1;
  await waitFor(async () => (last = await connectedTo(node)) === count, { what: () => `${count} devices connected to ${node.server.mqttUrl} (${last} now)`, timeoutMs });
}
