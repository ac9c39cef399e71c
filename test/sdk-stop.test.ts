import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createSecureContext, createServer, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { ConnectError, MqttConnector } from '../device-sdk/src/connector.ts';
import { enrolledDevices } from './helpers/device.ts';
import { startFleet, type Fleet } from './helpers/fleet.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

/*
 * A device stopped gracefully waits for the broker to acknowledge its QoS 1 messages in flight;
 * stopped by force meanwhile (the simulator's bounded stop does so), it must cut the connection
 * then, not leave it open for as long as the broker stays silent.
 */

/** A broker with the fleet's server certificate that answers CONNECT (or not) and never acknowledges a PUBLISH. */
async function silentBroker(t: ExecutionContext, fleet: Fleet, options: { readonly connack: boolean }): Promise<{ readonly url: string; readonly sockets: TLSSocket[] }> {
  const sockets: TLSSocket[] = [];
  const server = createServer({ key: await readFile(fleet.layout.serverKey), cert: await readFile(fleet.layout.serverCert) }, (socket) => {
    sockets.push(socket);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: { cmd: string }) => {
      if (packet.cmd === 'connect' && options.connack) socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { url: `mqtts://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

/** A fleet, one enrolled device and a connector with its operational credential. */
async function deviceConnector(t: ExecutionContext) {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const connector = new MqttConnector(device!.id, fleet.rootPem, {});
  t.teardown(() => connector.end(true));
  const credential = { secureContext: createSecureContext({ ca: fleet.rootPem, cert: device!.operational.certPem, key: device!.operational.keyPem }) };
  return { fleet, device: device!, connector, credential };
}

test('a forced end during a graceful end that waits for a PUBACK closes the connection at once', async (t) => {
  const { fleet, device, connector, credential } = await deviceConnector(t);
  const broker = await silentBroker(t, fleet, { connack: true });
  await connector.connect(credential, broker.url);
  void connector.mqtt?.publishAsync(`devices/${device.id}/telemetry`, 'x', { qos: 1 }).catch(() => undefined);
  const graceful = connector.end(false);
  const closed = new Promise((resolve) => broker.sockets[0]!.once('close', resolve));
  await connector.end(true);
  await withDeadline(closed, { what: 'the connection to close after the forced end', timeoutMs: 5000 });
  await withDeadline(graceful.catch(() => undefined), { what: 'the graceful end to finish once the connection is gone', timeoutMs: 5000 });
  t.pass();
});

test('end() while the connector reconnects (a new credential, another node): the reconnect is given up, no connection is left behind', async (t) => {
  const { fleet, connector, credential } = await deviceConnector(t);
  const url = `mqtts://127.0.0.1:${fleet.server.mqttPort}`;
  await connector.connect(credential, url);
  const client = connector.mqtt;
  // connect() again cuts the current connection and waits for it to close before reconnecting.
  const again = connector.connect(credential, url);
  await connector.end();
  const error = await t.throwsAsync(again, { instanceOf: ConnectError });
  t.is(error?.code, 'SDK_NETWORK');
  t.false(client?.connected ?? false);
  t.true(client?.stream.destroyed ?? true, 'the client was not reconnected');
});

test('end() while the connector waits for its CONNACK closes the connection at once (nothing is in flight to flush)', async (t) => {
  const { fleet, connector, credential } = await deviceConnector(t);
  const broker = await silentBroker(t, fleet, { connack: false });
  const connecting = connector.connect(credential, broker.url);
  await waitFor(() => broker.sockets.length > 0, { what: 'the connection to reach the broker', timeoutMs: 5000, intervalMs: 10 });
  // A reset is a close too ('error' comes first then, which once() would take for a failure).
  const closed = new Promise((resolve) => broker.sockets[0]!.once('close', resolve));
  const refused = t.throwsAsync(connecting, { instanceOf: ConnectError });
  await connector.end();
  await withDeadline(closed, { what: 'the connection to close after end()', timeoutMs: 3000 });
  await refused;
});
