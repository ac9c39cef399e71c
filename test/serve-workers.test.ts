import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import type { DeviceDetail } from '../server/src/admin/wire.ts';
import { restartAfterDeath } from '../server/src/cluster/worker-pool.ts';
import { RESTARTS_PER_MINUTE } from '../server/src/cluster/worker-protocol.ts';
import { admin, type AdminTarget } from './helpers/admin-client.ts';
import { fleetgate, refused } from './helpers/cli.ts';
import { enrolledDevices, mqttOptions } from './helpers/device.ts';
import { makeDataDir, serviceCredential, type Credential, type DataDir } from './helpers/fleet.ts';
import { freePort } from './helpers/ports.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { startRedis } from './helpers/redis.ts';
import { startServeProcess, type ServeProcess } from './helpers/serve-process.ts';
import { metric } from './helpers/sockets.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

/*
 * `fleetgate serve --workers 2` as an operator runs it: a primary process and two workers
 * (node:cluster) sharing the listening ports, each a cluster node on a throwaway PostgreSQL and
 * Redis. The heavy tests run one at a time: each starts three Node processes on two cores.
 */

test.after.always(stopSharedPostgres);

/** The answer of the primary's `/readyz`. */
interface PoolReadiness {
  status: string;
  checks: Record<string, string>;
  notReady: string[];
  workers: { worker: string; node: string; pid?: number; state: string }[];
}

interface Workers extends DataDir {
  readonly serve: ServeProcess;
  readonly estUrl: string;
  readonly target: AdminTarget;
}

async function readyz(serve: ServeProcess): Promise<{ status: number; body: PoolReadiness }> {
  const response = await fetch(new URL('/readyz', serve.metricsUrl));
  return { status: response.status, body: (await response.json()) as PoolReadiness };
}

/** Starts `fleetgate serve --workers 2 --node-id node` and waits until every worker is ready. */
async function startWorkers(t: ExecutionContext, env: Record<string, string> = {}): Promise<Workers> {
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const serve = await startServeProcess(t, data.dir, data.rootPem, {
    args: ['--registry', registryUrl, '--cluster-redis', redis.url, '--workers', '2', '--node-id', 'node'],
    adminPort: true,
    mqttPort: true,
    metricsPort: true,
    env,
  });
  await waitFor(async () => (await readyz(serve)).status === 200, { what: () => `both workers ready: ${serve.output()}`, timeoutMs: 60_000, intervalMs: 100 });
  return { ...data, serve, estUrl: serve.estUrl, target: { layout: data.layout, rootPem: data.rootPem, server: { adminUrl: serve.adminUrl } } };
}

async function connect(t: ExecutionContext, workers: Workers, credential: Credential, clientId = credential.id): Promise<MqttClient> {
  const client = await connectAsync(workers.serve.mqttUrl, mqttOptions(workers, credential, { clientId }));
  t.teardown(() => client.endAsync(true));
  return client;
}

/** Messages a client receives, by topic. */
function inbox(client: MqttClient): Map<string, string> {
  const received = new Map<string, string>();
  client.on('message', (topic, payload) => received.set(topic, payload.toString()));
  return received;
}

/** The sum of every series of a metric whose labels include `labels` (Prometheus text). */
async function total(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const series = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1], label[2]]));
    if (Object.entries(labels).every(([key, value]) => series[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

test.serial('--workers 2: devices land on both workers, a service on one and devices on the other exchange messages, /metrics sums the workers; SIGTERM stops all and exits 0', async (t) => {
  t.timeout(180_000);
  const workers = await startWorkers(t);
  const { serve } = workers;
  const devices = await enrolledDevices(t, workers, 'thermostat', 6);
  const service = await connect(t, workers, await serviceCredential(t, workers), 'backend:ingest');
  const telemetry = inbox(service);
  await service.subscribeAsync('devices/+/telemetry', { qos: 1 });
  const clients = await Promise.all(devices.map((device) => connect(t, workers, device.operational)));
  const commands = clients.map(inbox);
  await Promise.all(clients.map((client, index) => client.subscribeAsync(`devices/${devices[index]?.id}/commands`, { qos: 1 })));

  // Presence names the worker: round robin puts connections on both.
  const nodes = await Promise.all(
    devices.map((device) =>
      waitFor(async () => (await admin(workers.target, 'GET', `/v1/devices/${device.id}`)).json<DeviceDetail>().presence?.node, { what: `presence of ${device.id}` }),
    ),
  );
  t.deepEqual([...new Set(nodes)].sort(), ['node-w0', 'node-w1'], `devices by worker: ${nodes.join(' ')}`);

  // The service is on one worker, so some devices are on the other: every message crosses Redis
  // or not, and all arrive.
  await Promise.all(clients.map((client, index) => client.publishAsync(`devices/${devices[index]?.id}/telemetry`, `t${index}`, { qos: 1 })));
  await waitFor(() => telemetry.size === devices.length, { what: () => `telemetry of every device at the service (${telemetry.size})` });
  devices.forEach((device, index) => t.is(telemetry.get(`devices/${device.id}/telemetry`), `t${index}`));
  await Promise.all(devices.map((device, index) => service.publishAsync(`devices/${device.id}/commands`, `c${index}`, { qos: 1 })));
  await waitFor(() => commands.every((received) => received.size === 1), { what: 'a command at every device' });
  devices.forEach((device, index) => t.is(commands[index]?.get(`devices/${device.id}/commands`), `c${index}`));

  // The aggregated counters are the totals of both workers.
  const { metricsUrl } = serve;
  t.is(await total(metricsUrl, 'fleetgate_enrollments_total', { operation: 'simpleenroll', result: 'issued' }), devices.length);
  t.is(await metric(metricsUrl, 'fleetgate_mqtt_connects_total'), devices.length + 1);
  t.is(await metric(metricsUrl, 'fleetgate_mqtt_connected_devices'), devices.length);
  t.is(await metric(metricsUrl, 'fleetgate_mqtt_connected_services'), 1);
  t.is(await metric(metricsUrl, 'fleetgate_mqtt_messages_in_total'), 2 * devices.length);
  t.is(await metric(metricsUrl, 'fleetgate_mqtt_messages_out_total'), 2 * devices.length);
  const [w0, w1] = [await metric(metricsUrl, 'fleetgate_worker_mqtt_connections{worker="w0"}'), await metric(metricsUrl, 'fleetgate_worker_mqtt_connections{worker="w1"}')];
  t.is(w0 + w1, devices.length + 1);
  t.true(w0 > 0 && w1 > 0, `connections by worker: ${w0}, ${w1}`);
  t.is(await metric(metricsUrl, 'fleetgate_devices{state="enrolled",model="thermostat"}'), devices.length, 'the census of the whole registry, not twice');
  t.is(await metric(metricsUrl, 'fleetgate_worker_up{worker="w1"}'), 1);
  t.is((await fetch(new URL('/healthz', metricsUrl))).status, 200);

  // Written once, by the primary; the admin commands find the pool through it.
  const recorded = join(workers.dir, 'run', 'admin-url');
  t.is((await readFile(recorded, 'utf8')).trim(), serve.adminUrl);
  const show = await fleetgate(['device', 'show', devices[0]?.id ?? '', '--data', workers.dir]);
  t.regex(show.stdout, /on node node-w[01]/, show.stderr);

  const pids = (await readyz(serve)).body.workers.map((worker) => worker.pid ?? 0);
  const exited = once(serve.child, 'exit');
  serve.child.kill('SIGTERM');
  const [code, signal] = (await withDeadline(exited, { what: 'the primary to exit', timeoutMs: 30_000 })) as [number | null, string | null];
  t.is(code, 0, serve.output());
  t.is(signal, null);
  t.false(await exists(recorded), 'the admin URL is forgotten on a clean stop');
  for (const pid of pids) t.throws(() => process.kill(pid, 0), undefined, `worker ${pid} has exited`);
  t.notRegex(serve.output(), /"level":50/, 'no error logged');
});

test.serial('a worker killed is restarted: /readyz answers 503 while it is down, 200 once it is back; the pool serves on', async (t) => {
  t.timeout(180_000);
  const workers = await startWorkers(t);
  const { serve } = workers;
  const before = (await readyz(serve)).body.workers.find((worker) => worker.worker === 'w1');
  if (!before?.pid) throw new Error(`no pid for w1: ${JSON.stringify(before)}`);
  process.kill(before.pid, 'SIGKILL');
  const down = await waitFor(
    async () => {
      const answer = await readyz(serve);
      return answer.status === 503 ? answer : undefined;
    },
    { what: '/readyz to answer 503', intervalMs: 20 },
  );
  t.deepEqual(down.body.notReady, ['w1']);
  t.regex(down.body.checks.w1 ?? '', /^(down|restarting|starting)$/);
  t.is(down.body.checks.w0, 'ok');
  const back = await waitFor(
    async () => {
      const answer = await readyz(serve);
      return answer.status === 200 ? answer : undefined;
    },
    { what: '/readyz to answer 200 again', timeoutMs: 60_000, intervalMs: 100 },
  );
  const after = back.body.workers.find((worker) => worker.worker === 'w1');
  t.is(after?.state, 'running');
  t.not(after?.pid, before.pid, 'a new process');
  t.is(await metric(serve.metricsUrl, 'fleetgate_worker_restarts_total{worker="w1"}'), 1);
  t.regex(serve.output(), /"msg":"worker died; restarting it"/);
  t.is(serve.child.exitCode, null, 'the primary runs on');

  // The pool serves as before: a device enrolls and connects.
  const [device] = await enrolledDevices(t, workers, 'camera', 1);
  if (!device) throw new Error('no device');
  const client = await connect(t, workers, device.operational);
  t.true(client.connected);
});

test.serial('balance: 200 MQTT TLS connections over 2 workers, one at a time and 20 at a time (Node round robin; NODE_CLUSTER_SCHED_POLICY=none measures the kernel)', async (t) => {
  t.timeout(180_000);
  const policy = process.env.NODE_CLUSTER_SCHED_POLICY ?? 'rr';
  const workers = await startWorkers(t, process.env.NODE_CLUSTER_SCHED_POLICY ? { NODE_CLUSTER_SCHED_POLICY: policy } : {});
  const credential = await serviceCredential(t, workers);
  const spread = async (): Promise<number[]> => [await metric(workers.serve.metricsUrl, 'fleetgate_worker_mqtt_connections{worker="w0"}'), await metric(workers.serve.metricsUrl, 'fleetgate_worker_mqtt_connections{worker="w1"}')];
  const COUNT = 200;
  const results: string[] = [];
  for (const concurrency of [1, 20]) {
    const clients: MqttClient[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < COUNT) {
          const id = `backend:c${concurrency}-${next++}`;
          clients.push(await connectAsync(workers.serve.mqttUrl, mqttOptions(workers, credential, { clientId: id })));
        }
      }),
    );
    const counts = await waitFor(
      async () => {
        const now = await spread();
        return (now[0] ?? 0) + (now[1] ?? 0) === COUNT ? now : undefined;
      },
      { what: `${COUNT} connections counted` },
    );
    results.push(`${concurrency} at a time: w0 ${counts[0]}, w1 ${counts[1]}`);
    if (policy === 'rr') for (const count of counts) t.true(count >= COUNT * 0.4 && count <= COUNT * 0.6, `round robin: ${counts.join(' / ')}`);
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await waitFor(async () => (await spread()).every((count) => count === 0), { what: 'every connection closed' });
  }
  t.log(`${policy}: ${results.join('; ')}`);
});

test('--workers above 1 without PostgreSQL or without Redis: SERVE_CLUSTER_INVALID naming what is missing, nothing started; Redis down at start: the worker\'s SERVE_CLUSTER_UNREACHABLE', async (t) => {
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = `redis://127.0.0.1:${await freePort()}`;
  const ports = ['--est-port', '0', '--mqtt-port', '0', '--admin-port', '0', '--metrics-port', '0'];
  const [noRedis, noPostgres, neither, zero] = await Promise.all([
    fleetgate(['serve', '--data', data.dir, '--workers', '2', '--registry', registryUrl, ...ports]),
    fleetgate(['serve', '--data', data.dir, '--workers', '2', '--cluster-redis', redis, ...ports]),
    fleetgate(['serve', '--data', data.dir, '--workers', '3', ...ports]),
    fleetgate(['serve', '--data', data.dir, '--workers', '0', ...ports]),
  ]);
  refused(t, noRedis, 'no Redis', 2, 'SERVE_CLUSTER_INVALID', /--workers 2 runs worker processes that share the registry and MQTT: missing Redis \(--cluster-redis/);
  refused(t, noPostgres, 'no PostgreSQL', 2, 'SERVE_CLUSTER_INVALID', /missing the registry on PostgreSQL \(--registry/);
  refused(t, neither, 'neither', 2, 'SERVE_CLUSTER_INVALID', /missing the registry on PostgreSQL .* and Redis/);
  refused(t, zero, '--workers 0', 2, 'CLI_USAGE', /--workers must be a whole number from 1 to 64/);
  t.false(await exists(join(data.dir, 'run', 'admin-url')), 'nothing started');

  // The workers start and fail: the primary reports the worker's own error once and exits with it.
  const unreachable = await fleetgate(['serve', '--data', data.dir, '--workers', '2', '--registry', registryUrl, '--cluster-redis', redis, ...ports], { env: { FLEETGATE_LOG_LEVEL: 'silent' } });
  refused(t, unreachable, 'Redis down', 1, 'SERVE_CLUSTER_UNREACHABLE', /^fleetgate: SERVE_CLUSTER_UNREACHABLE: Redis does not answer at redis:\/\/127\.0\.0\.1:\d+: .*\n$/);
});

test('restarts: 1 s after the first death, doubling with each death within a minute; more than 5 within a minute: none', (t) => {
  let deaths: number[] = [];
  const waits: (number | undefined)[] = [];
  // A worker that dies as soon as it is back: each death comes after the wait and a 1 s start.
  let now = 0;
  for (let death = 0; death <= RESTARTS_PER_MINUTE; death++) {
    const next = restartAfterDeath(deaths, now);
    deaths = next.deaths;
    waits.push(next.waitMs);
    now += (next.waitMs ?? 0) + 1_000;
  }
  t.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 16_000, undefined]);
  // Deaths more than a minute apart never add up.
  deaths = [];
  for (let minute = 0; minute < 10; minute++) {
    const next = restartAfterDeath(deaths, minute * 61_000);
    deaths = next.deaths;
    t.is(next.waitMs, 1_000);
  }
  t.is(deaths.length, 1);
});
