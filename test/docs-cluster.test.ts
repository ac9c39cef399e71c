import test from 'ava';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, bashBlocks, docEnvironment, fencedBlocks, freeListenerPortSets, runDocScript, tail, type ListenerPorts } from './helpers/doc-script.ts';
import { startPostgres } from './helpers/postgres.ts';
import { startRedis } from './helpers/redis.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * docs/cluster.md is executable: its ```bash blocks, in order, make one data directory, copy it
 * to three nodes, start them in cluster mode (PostgreSQL registry, Redis), put HAProxy in front,
 * enroll a device and exchange messages through the balancer, stop the node the device is on and
 * watch the device come back on another node with its session, then replace the stopped node
 * with a fourth one. This test gives the guide a throwaway PostgreSQL and Redis of its own and
 * two sets of free ports (the balancer's, and one the nodes share on their own loopback
 * addresses), runs exactly those blocks in one bash in an empty directory, checks what the guide
 * claims to show (the HAProxy configuration it prints is the one the page shows, with the
 * default ports), and then reads the registry it left behind.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'cluster.md');
/** Four node starts, HAProxy twice, two drains of 5 s, about 10 CLI calls, openssl, curl, mosquitto. */
const TIMEOUT_MS = 180_000;
/** The nodes' loopback addresses in the guide (node4 joins in section 6). */
const NODE_ADDRESSES = ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14'];
/** The ports the guide documents, which the test replaces by free ones. */
const DEFAULTS = { balancer: { est: 8443, mqtt: 8883, admin: 9443, stats: 8404 }, node: { est: 8443, mqtt: 8883, admin: 9443, metrics: 9464 } };

/** Lines that call an operator command of the CLI (they reach the admin API). */
const ADMIN_CALL = /\bfleetgate (device|audit|crl|bootstrap (trust|list|untrust))\b/;

/** Whether something accepts TCP connections on host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A text with the test's ports put back to the documented defaults. */
function withDefaultPorts(text: string, balancer: ListenerPorts, node: ListenerPorts): string {
  const pairs: [number, number][] = [
    [balancer.est, DEFAULTS.balancer.est],
    [balancer.mqtt, DEFAULTS.balancer.mqtt],
    [balancer.admin, DEFAULTS.balancer.admin],
    [balancer.metrics, DEFAULTS.balancer.stats],
    [node.est, DEFAULTS.node.est],
    [node.mqtt, DEFAULTS.node.mqtt],
    [node.admin, DEFAULTS.node.admin],
    [node.metrics, DEFAULTS.node.metrics],
  ];
  return pairs.reduce((result, [port, documented]) => result.replace(new RegExp(`\\b${port}\\b`, 'g'), String(documented)), text);
}

test('every code block of docs/cluster.md is marked bash or text; the backends come from the reader; ports have defaults; admin calls go through the balancer', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
  }
  const shown = blocks.filter((block) => block.language === 'text').map((block) => block.body).join('\n');
  t.regex(shown, /^export FLEETGATE_REGISTRY_URL=postgres:\/\/fleetgate@127\.0\.0\.1:5432\/fleetgate$/m);
  t.regex(shown, /^export REDIS_URL=redis:\/\/127\.0\.0\.1:6379$/m);
  const runnable = await bashBlocks(GUIDE);
  t.true(runnable.length >= 12, 'the walk-through has its steps as bash blocks');
  t.regex(runnable[0]?.body ?? '', /\$\{FLEETGATE_REGISTRY_URL:\?/, 'the walk-through stops at once without a database');
  t.regex(runnable[0]?.body ?? '', /\$\{REDIS_URL:\?/, 'the walk-through stops at once without Redis');
  t.regex(runnable.at(-1)?.body ?? '', /kill "\$HAPROXY_PID"[\s\S]*kill "\$\{NODE_PID\[/, 'the walk-through ends by stopping the balancer and the nodes');
  const script = runnable.map((block) => block.body).join('\n');
  for (const variable of ['EST_PORT', 'MQTT_PORT', 'ADMIN_PORT', 'STATS_PORT', 'NODE_EST_PORT', 'NODE_MQTT_PORT', 'NODE_ADMIN_PORT', 'NODE_METRICS_PORT', 'LB_ADDR', 'FLEET_NAME', 'DATA']) {
    t.true(script.includes(`${variable}=\${${variable}:-`), `${variable} has a default`);
  }
  t.regex(script, /fleetgate serve --data "\$id" --cluster-redis "\$REDIS_URL" --node-id "\$id" --host "\$addr"/);
  t.notRegex(script, /\b(createdb|dropdb|redis-cli)\b/, 'the script never creates or changes the backends');
  const calls = script.split('\n').filter((line) => !line.trim().startsWith('#') && ADMIN_CALL.test(line));
  t.true(calls.length >= 1, `${calls.length} admin calls`);
  for (const line of calls) t.regex(line, /"\$\{OPS\[@\]\}"/, `goes through the balancer: ${line}`);
  t.regex(script, /^OPS=\(--data "\$DATA" --server "https:\/\/\$LB_ADDR:\$ADMIN_PORT"\)/m);
});

test('the commands of docs/cluster.md run three nodes behind HAProxy: a device enrolls and publishes through it, follows its session to another node, and a fourth node joins', async (t) => {
  const [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
  t.teardown(() => postgres.destroy());
  t.teardown(() => redis.destroy());
  const registryUrl = await postgres.createDatabase();
  const cwd = await tempDir(t, 'fleetgate-docs-cluster-');
  const [balancer, node] = await freeListenerPortSets(2);
  if (!balancer || !node) throw new Error('no ports');
  const env = {
    ...docEnvironment(balancer),
    STATS_PORT: String(balancer.metrics),
    NODE_EST_PORT: String(node.est),
    NODE_MQTT_PORT: String(node.mqtt),
    NODE_ADMIN_PORT: String(node.admin),
    NODE_METRICS_PORT: String(node.metrics),
    FLEETGATE_REGISTRY_URL: registryUrl,
    REDIS_URL: redis.url,
  };
  const result = await runDocScript(t, GUIDE, { cwd, env, timeoutMs: TIMEOUT_MS });
  const { report } = result;
  t.false(result.timedOut, report);
  t.is(result.code, 0, report);
  const out = result.stdout;
  const [id = ''] = (JSON.parse(await readFile(join(cwd, 'lot.json'), 'utf8')) as { devices: { id: string }[] }).devices.map((device) => device.id);

  // 1. One data directory: every name in the server certificate, the settings for a balancer.
  t.regex(out, /^\s+DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, DNS:fleet\.example\.net, IP Address:127\.0\.0\.11, IP Address:127\.0\.0\.12, IP Address:127\.0\.0\.13$/m, report);
  t.regex(out, /^\s+"maxInProgressPerSource": 512,\n\s+"maxPendingPerAddress": 1024\n\s+"shutdownDrainMs": 5000$/m, report);
  const config = JSON.parse(await readFile(join(cwd, 'node2', 'config.json'), 'utf8')) as { registry: { url: string }; health: { shutdownDrainMs: number } };
  t.is(config.registry.url, registryUrl);
  t.is(config.health.shutdownDrainMs, 5000);

  // 2. Three nodes, ready, Redis included.
  for (const name of ['node1', 'node2', 'node3']) {
    t.regex(out, new RegExp(`^${name} \\{"status":"ready","checks":\\{"shutdown":"ok","registry":"ok","redis":"ok","est":"ok","mqtt":"ok","admin":"ok"\\},"notReady":\\[\\]\\}$`, 'm'), report);
  }

  // 3. The configuration that ran is the one the page shows (with the documented ports).
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  const shownConfig = blocks.find((block) => block.language === 'text' && block.body.startsWith('# HAProxy in front of the fleetgate nodes'))?.body ?? '';
  t.truthy(shownConfig, 'the page shows the configuration');
  const printed = /^# HAProxy in front of the fleetgate nodes[\s\S]*?^Configuration file is valid$/m.exec(out)?.[0];
  t.truthy(printed, report);
  t.is(withDefaultPorts(printed ?? '', balancer, node), shownConfig);
  t.regex(out, /^node1 UP\nnode2 UP\nnode3 UP$/m, report);

  // 4. Enrolled through the balancer at one node; published once, received at every node.
  t.regex(out, new RegExp(`^enrolled ${id}\\nnode[123]\\.log$`, 'm'), report);
  for (const name of ['node1', 'node2', 'node3']) t.regex(out, new RegExp(`^at ${name}: devices/${id}/telemetry \\{"temp":21\\.5\\}$`, 'm'), report);
  t.regex(out, /^connected {6}no, since \S+ \S+ \(last on node node[123]\)$/m, report);

  // 5. The node the device is on leaves; the device's queued command waits in Redis and arrives at another node.
  // The last "connected yes" the guide printed names the node it stops (a slow machine may have
  // moved the device once before: mosquitto_sub reconnects through the balancer by itself).
  const gone = [...out.matchAll(/^connected {6}yes, since \S+ \S+ from 127\.0\.0\.1 on node (node[123])$/gm)].at(-1)?.[1] ?? '';
  t.regex(gone, /^node[123]$/, report);
  const others = ['node1', 'node2', 'node3'].filter((name) => name !== gone);
  t.regex(out, new RegExp(['node1', 'node2', 'node3'].map((name) => `${name} ${name === gone ? 'DOWN' : 'UP'}`).join('\\n'), 'm'), report);
  t.regex(out, new RegExp(`^the device's connection was closed \\(mosquitto_sub exit 7\\)\\nError: The connection was lost\\.\\n${gone} stopped$`, 'm'), report);
  t.regex(out, new RegExp(`^devices/${id}/commands/setpoint 19\\nconnected {6}no, since \\S+ \\S+ \\(last on node (${others.join('|')})\\)$`, 'm'), report);

  // 6. node4 replaces it in the balancer.
  t.regex(out, new RegExp(`^Configuration file is valid\\n${others[0]} UP\\n${others[1]} UP\\nnode4 UP$`, 'm'), report);
  t.regex(out, /^cluster stopped$/m, report);

  // The balancer saw the node go and come: its log.
  const balancerLog = await readFile(join(cwd, 'haproxy.log'), 'utf8');
  t.regex(balancerLog, new RegExp(`Server mqtt/${gone} is DOWN, reason: Layer7 wrong status, code: 503`), tail(balancerLog));
  t.regex(balancerLog, / mqtt mqtt\/node[1-4] /, tail(balancerLog));

  // Every node the guide started was stopped by it, the one that left after draining.
  for (const name of ['node1', 'node2', 'node3', 'node4']) {
    const log = await readFile(join(cwd, `${name}.log`), 'utf8');
    t.regex(log, /"msg":"fleetgate stopped"/, `${name}.log: ${tail(log)}`);
    t.regex(log, /"msg":"not ready: draining before the listeners close"/, `${name}.log: ${tail(log)}`);
  }
  for (const port of [balancer.est, balancer.mqtt, balancer.admin, balancer.metrics]) {
    t.false(await listening('127.0.0.1', port), `balancer port ${port} still accepts connections after the guide stopped it`);
  }
  for (const address of NODE_ADDRESSES) {
    for (const port of [node.est, node.mqtt, node.admin, node.metrics]) {
      t.false(await listening(address, port), `${address}:${port} still accepts connections after the guide stopped the nodes`);
    }
  }

  // What the guide left in the registry: the device, last seen on a node that stayed.
  const registry = await PostgresRegistry.open(registryUrl);
  t.teardown(() => registry.close());
  t.like(await registry.getDevice(id), { state: 'enrolled' });
  const presence = await registry.getPresence(id);
  t.true(presence?.node !== undefined && others.includes(presence.node), `presence: ${JSON.stringify(presence)}`);
  t.like(await registry.verifyAudit(), { ok: true });
});
