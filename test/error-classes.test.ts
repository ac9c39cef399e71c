import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ConnectError } from '../device-sdk/src/connector.ts';
import type { DeviceErrorCode } from '../device-sdk/src/errors.ts';
import { FileCredentialStore } from '../device-sdk/src/file-store.ts';
import { FleetDevice } from '../device-sdk/src/fleet-device.ts';
import { AdminError } from '../server/src/admin/errors.ts';
import { UsageError } from '../server/src/cli/args.ts';
import { CliError } from '../server/src/cli/errors.ts';
import { operatorError } from '../server/src/cli/operator-error.ts';
import { ConfigError } from '../server/src/config/config.ts';
import { DerError } from '../server/src/pki/der.ts';
import { PkiError } from '../server/src/pki/errors.ts';
import { fleetgate } from './helpers/cli.ts';
import { factoryCredentials, makeDataDir, startFleet, testConfig } from './helpers/fleet.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * What the one base class changes in behaviour: the CLI prints every fleetgate error with its
 * code and the exit status of the operator catalogue; a refusal of the admin API is an AdminError
 * only with a code this CLI knows; the SDK names broker refusals CONNACK_<n>.
 */

test('the CLI maps every fleetgate error to its code and the exit status of the operator catalogue', (t) => {
  t.like(operatorError(new UsageError('missing --count')), { code: 'CLI_USAGE', message: 'missing --count', exit: 2 });
  t.like(operatorError(new CliError('CLI_USAGE', 'the same, by its code')), { code: 'CLI_USAGE', exit: 2 });
  t.like(operatorError(new ConfigError('bad config')), { code: 'CONFIG_INVALID', exit: 1 });
  t.like(operatorError(new PkiError('PKI_PASSPHRASE', 'wrong passphrase')), { code: 'PKI_PASSPHRASE', exit: 1 }, 'a code of another catalogue: exit 1');
  t.like(operatorError(new DerError('truncated')), { code: 'DER_INVALID', exit: 1 });
  t.like(operatorError(new AdminError('ADMIN_DEVICE_NOT_FOUND', 'no device x')), { code: 'ADMIN_DEVICE_NOT_FOUND', exit: 1 });
  const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', address: '127.0.0.1', port: 8443 });
  t.like(operatorError(inUse), { code: 'SERVE_LISTEN_FAILED', exit: 1 });
  t.regex(operatorError(inUse)?.message ?? '', /127\.0\.0\.1:8443 \(EADDRINUSE\)/);
  t.is(operatorError(new Error('a bug')), undefined, 'anything else is unexpected');
  t.is(operatorError('a string'), undefined);
});

test('a UsageError is a CliError: inside an admin command it still exits 2', (t) => {
  const error = new UsageError('--limit must be a number');
  t.true(error instanceof CliError);
  t.is(error.name, 'UsageError');
  t.is(error.code, 'CLI_USAGE');
});

test('ConnectError names a broker refusal CONNACK_<n>, a reserved return code SDK_REFUSED, no CONNACK SDK_NETWORK', (t) => {
  for (const returnCode of [1, 2, 3, 4, 5]) {
    t.is<string, string>(new ConnectError({ kind: 'refused', returnCode, message: 'refused' }).code, `CONNACK_${returnCode}`);
  }
  for (const returnCode of [6, 0x80, 0x87]) t.is(new ConnectError({ kind: 'refused', returnCode, message: 'refused' }).code, 'SDK_REFUSED');
  t.is(new ConnectError({ kind: 'network', message: 'closed' }).code, 'SDK_NETWORK');
});

test('a device the broker refuses with CONNACK 2 ends in state refused with code CONNACK_2', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { keepaliveMaxSeconds: 120 } }) });
  const [bootstrap] = await factoryCredentials(t, fleet, 'thermostat');
  const store = await FileCredentialStore.provision(join(await tempDir(t, 'fleetgate-device-'), 'credentials'), {
    root: fleet.rootPem,
    bootstrap: { certPem: bootstrap!.certPem, key: bootstrap!.keyPem },
  });
  // A keepalive above broker.limits.keepaliveMaxSeconds: BROKER_KEEPALIVE, CONNACK 2.
  const device = new FleetDevice({ deviceId: bootstrap!.id, estUrl: fleet.estUrl, mqttUrl: fleet.server.mqttUrl, store, mqtt: { keepalive: 600 } });
  t.teardown(() => device.stop(true));
  const refused = once(device, 'refused') as Promise<[{ code: DeviceErrorCode; reason: string }]>;
  await device.start();
  const [info] = await refused;
  t.is(info.code, 'CONNACK_2');
  t.like(device.state, { type: 'refused', code: 'CONNACK_2' });
});

/** A stand-in for the admin API: real HTTPS with the data directory's server certificate, one fixed answer. */
async function standInAdminApi(t: ExecutionContext, answer: { status: number; body: unknown }): Promise<{ url: string; dataDir: string }> {
  const data = await makeDataDir(t);
  const server = createServer({ key: await readFile(data.layout.serverKey), cert: await readFile(data.layout.serverCert) }, (_request, response) => {
    response.writeHead(answer.status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(answer.body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, dataDir: data.dir };
}

test('the CLI prints a refusal of the admin API with its code; a code it does not know is CLI_BAD_RESPONSE, quoted', async (t) => {
  const known = await standInAdminApi(t, { status: 404, body: { error: { code: 'ADMIN_DEVICE_NOT_FOUND', message: 'no device thermostat-1' } } });
  const unknown = await standInAdminApi(t, { status: 418, body: { error: { code: 'ADMIN_FROM_THE_FUTURE', message: 'a newer server' } } });
  const [knownResult, unknownResult] = await Promise.all([
    fleetgate(['device', 'show', 'thermostat-1', '--data', known.dataDir, '--server', known.url]),
    fleetgate(['device', 'show', 'thermostat-1', '--data', unknown.dataDir, '--server', unknown.url]),
  ]);
  t.is(knownResult.code, 1, knownResult.stderr);
  t.is(knownResult.stderr, 'fleetgate: ADMIN_DEVICE_NOT_FOUND: no device thermostat-1\n');
  t.is(unknownResult.code, 1, unknownResult.stderr);
  t.true(unknownResult.stderr.startsWith('fleetgate: CLI_BAD_RESPONSE: '), unknownResult.stderr);
  t.regex(unknownResult.stderr, /HTTP 418 .*ADMIN_FROM_THE_FUTURE.*a newer server/);
});
