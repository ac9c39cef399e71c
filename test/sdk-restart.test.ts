import test from 'ava';
import { pino } from 'pino';
import { FleetDevice } from '../device-sdk/src/fleet-device.ts';
import { MemoryCredentialStore } from '../device-sdk/src/store.ts';
import { startServer } from '../server/src/server.ts';
import { factoryCredentials, startFleet, testConfig } from './helpers/fleet.ts';
import { waitFor } from './helpers/wait.ts';

const DEVICES = 200;

test(`server restart with ${DEVICES} devices connected: all come back, spread out by jitter`, async (t) => {
  const config = testConfig({ brokerLimits: { connectionsPerSecond: 5000, connectionBurst: 5000 } });
  const fleet = await startFleet(t, { config });
  const bootstraps = await factoryCredentials(t, fleet, 'thermostat', DEVICES);
  const devices = bootstraps.map(
    (bootstrap) =>
      new FleetDevice({
        deviceId: bootstrap.id,
        estUrl: fleet.estUrl,
        mqttUrl: fleet.server.mqttUrl,
        store: new MemoryCredentialStore(fleet.rootPem, { certPem: bootstrap.certPem, key: bootstrap.keyPem }),
        backoff: { initialMs: 1500, maxMs: 6000, multiplier: 2 },
      }),
  );
  t.teardown(() => Promise.all(devices.map((device) => device.stop(true))));
  for (let index = 0; index < devices.length; index += 25) await Promise.all(devices.slice(index, index + 25).map((device) => device.start()));
  t.true(devices.every((device) => device.state.type === 'connected'));

  const { estPort, mqttPort } = fleet.server;
  const back = new Map<string, number>();
  let restartedAt = 0;
  for (const device of devices) {
    device.on('connected', () => {
      if (restartedAt > 0 && !back.has(device.deviceId)) back.set(device.deviceId, Date.now() - restartedAt);
    });
  }
  await fleet.server.close();
  // Restart once every device has seen the drop (and is backing off), not after a fixed pause.
  await waitFor(() => devices.every((device) => device.state.type !== 'connected'), {
    what: () => `every device to see the server go (${devices.filter((device) => device.state.type === 'connected').length} still connected)`,
  });
  restartedAt = Date.now();
  const restarted = await startServer({
    dataDir: fleet.dir,
    listen: { host: '127.0.0.1', estPort, mqttPort, adminPort: 0, metricsPort: 0 },
    logger: pino({ level: 'silent' }),
    config,
  });
  t.teardown(() => restarted.close());
  await waitFor(() => back.size >= DEVICES, { what: () => `every device to reconnect (${back.size} of ${DEVICES})`, timeoutMs: 30_000, intervalMs: 50 });
  t.is(back.size, DEVICES, 'every device reconnected');
  const times = [...back.values()].sort((a, b) => a - b);
  const spread = (times.at(-1) ?? 0) - (times[0] ?? 0);
  const busiestSecond = Math.max(...times.map((start) => times.filter((time) => time >= start && time < start + 250).length));
  t.log(`reconnected within ${times.at(-1)} ms of the restart; spread ${spread} ms; at most ${busiestSecond} in any 250 ms`);
  t.true(spread >= 1000, `reconnects spread over ${spread} ms`);
  t.true(busiestSecond < DEVICES / 2, 'no thundering herd: fewer than half within any 250 ms');
  t.is((await restarted.registry.listDevices()).length, DEVICES, 'no device enrolled twice');
});
