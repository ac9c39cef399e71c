import test from 'ava';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { serviceCredential, startFleet } from './helpers/fleet.ts';
import { metric } from './helpers/sockets.ts';

/*
 * A persistent session (clean = false) keeps only what it was granted. aedes 1.x persisted every
 * filter of a SUBSCRIBE once one of them was granted, refused ones included, and its persistence
 * queued messages matching them while the device was offline: a device got another device's
 * messages at its next reconnect, and refused filters piled up in memory.
 */

test('a refused filter in a persistent session neither queues nor delivers another device\'s messages', async (t) => {
  const fleet = await startFleet(t);
  const [a, b] = await enrolledDevices(t, fleet, 'thermostat', 2);
  const backend = await serviceCredential(t, fleet);
  const first = await connectMqtt(t, fleet, a!.operational, { clean: false });
  const granted = await first.subscribeAsync([`devices/${a!.id}/#`, `devices/${b!.id}/#`], { qos: 1 }).then(
    (grants) => grants.map((grant) => grant.qos),
    (error: { packet?: { granted?: number[] } }) => error.packet?.granted,
  );
  t.deepEqual(granted, [1, 128]);
  await first.endAsync();

  // While A is offline: a message for B, then a command for A (queued for A's persistent session).
  const service = await connectMqtt(t, fleet, backend, { clientId: 'backend:test' });
  await service.publishAsync(`devices/${b!.id}/commands/secret`, 'for B only', { qos: 1 });
  await service.publishAsync(`devices/${a!.id}/commands/hello`, 'for A', { qos: 1 });

  const received: string[] = [];
  const again = await connectMqtt(t, fleet, a!.operational, { clean: false });
  // The queue is delivered in order: once A's own command is here, B's would have come first.
  await new Promise<void>((resolve) => {
    again.on('message', (topic) => {
      received.push(topic);
      if (topic === `devices/${a!.id}/commands/hello`) resolve();
    });
  });
  t.deepEqual(received, [`devices/${a!.id}/commands/hello`]);
  // The refused filter was never stored, so the delivery check had nothing to catch.
  t.is(await metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_DELIVERY_DENIED"}'), 0);
});
