import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG, loadConfig, mergeConfig, type ServerConfig } from '../server/src/config/config.ts';
import { CONFIG_SCHEMA, type SchemaNode } from '../server/src/config/schema.ts';
import { fleetgate } from './helpers/cli.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { FLEETGATE_BIN } from './helpers/serve-process.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

const DAY = 86_400;

/** The defaults as config.ts wrote them by hand before the schema: the schema must keep every one. */
const DEFAULTS_BEFORE_THE_SCHEMA: ServerConfig = {
  enrollment: {
    keyKinds: ['ec-p256', 'ec-p384'],
    rsaMinBits: 2048,
    defaultModel: { certificateLifetimeSeconds: 30 * DAY },
    models: {
      thermostat: { certificateLifetimeSeconds: 30 * DAY },
      camera: { certificateLifetimeSeconds: 30 * DAY },
      car: { certificateLifetimeSeconds: 90 * DAY },
    },
    renewalGraceSeconds: 3 * DAY,
    bootstrapReenroll: 'after-expiry',
    clockSkewSeconds: 300,
  },
  est: {
    maxBodyBytes: 16 * 1024,
    ratePerSecond: 1000,
    rateBurst: 2000,
    perIdentityPerMinute: 10,
    maxConcurrent: 512,
    requestTimeoutMs: 15_000,
    bodyTimeoutMs: 5_000,
    maxInProgressPerSource: 128,
    auditRefusalsPerSourcePerMinute: 60,
    refusalLogsPerSecond: 20,
  },
  broker: {
    topics: {
      default: { publish: ['devices/{id}/#'], subscribe: ['devices/{id}/#'] },
      models: {
        thermostat: { subscribe: ['fleet/thermostat/commands'] },
        camera: { publish: ['devices/{id}/events/#'] },
        car: {},
      },
    },
    services: {
      backend: { publish: ['devices/+/commands/#', 'fleet/#'], subscribe: ['devices/#'] },
    },
    limits: {
      maxConnections: 50_000,
      connectionsPerSecond: 2000,
      connectionBurst: 4000,
      maxPacketBytes: 256 * 1024,
      keepaliveMinSeconds: 1,
      keepaliveMaxSeconds: 1200,
      maxInflight: 100,
      maxTopicLevels: 16,
      messagesPerSecond: 500,
      messageBurst: 1000,
      connectTimeoutMs: 10_000,
      presenceFlushMs: 1000,
      maxRetainedPerDevice: 100,
      maxRetainedBytesPerDevice: 1024 * 1024,
      maxRetainedBytes: 256 * 1024 * 1024,
      maxSubscriptionsPerClient: 100,
      historyPerDevice: 50,
      historySummaryWindowMs: 60_000,
      historyMaxOpen: 10_000,
    },
  },
  // shedPendingConnections 64 -> 256 on 2026-12-03: a handshake is in progress for a round trip, and 64 capped a node
  // at about 210 handshakes/s over a 300 ms link however idle it was (docs/broker.md, "Load shedding").
  listeners: { handshakeTimeoutMs: 10_000, maxPendingConnections: 1024, maxPendingPerAddress: 128, shedPendingConnections: 256, shedEventLoopDelayMs: 500 },
  // Added with shared TLS session tickets (issue 14): a one-day key window, tickets live as long.
  tls: { ticketKeyWindowSeconds: 86_400, sessionTimeoutSeconds: 86_400 },
  // Added with the PostgreSQL registry and cluster mode (issues 11 and 12): no URL means LevelDB and one node.
  registry: { poolSize: 10, connectTimeoutMs: 3_000, queryTimeoutMs: 10_000, changeRetentionHours: 24 },
  cluster: { maxSessionDelivery: 1000 },
  health: { shutdownDrainMs: 0 },
};

/** The ConfigError message of a refused configuration. */
function refusal(t: import('ava').ExecutionContext, partial: unknown): string {
  const error = t.throws(() => mergeConfig(partial), { instanceOf: ConfigError });
  t.is(error?.code, 'CONFIG_INVALID');
  return error?.message ?? '';
}

test('DEFAULT_CONFIG comes from the schema and keeps every default the hand-written one had', (t) => {
  t.deepEqual(DEFAULT_CONFIG, DEFAULTS_BEFORE_THE_SCHEMA);
});

test('defaults filled: an empty file, a partial section and a partial map entry come out complete', (t) => {
  // ajv's useDefaults and the schema walker that makes DEFAULT_CONFIG agree.
  t.deepEqual(mergeConfig({}), DEFAULT_CONFIG);
  t.deepEqual(mergeConfig({ est: {}, broker: {}, listeners: {}, enrollment: {} }), DEFAULT_CONFIG);
  const config = mergeConfig({ est: { maxBodyBytes: 4096 }, broker: { limits: { maxConnections: 7 }, topics: { default: { publish: ['a/{id}'] } } } });
  t.deepEqual(config.est, { ...DEFAULT_CONFIG.est, maxBodyBytes: 4096 });
  t.deepEqual(config.broker.limits, { ...DEFAULT_CONFIG.broker.limits, maxConnections: 7 });
  // Each of publish and subscribe has its own default.
  t.deepEqual(config.broker.topics.default, { publish: ['a/{id}'], subscribe: ['devices/{id}/#'] });
  t.deepEqual(config.enrollment, DEFAULT_CONFIG.enrollment);
  t.deepEqual(config.listeners, DEFAULT_CONFIG.listeners);
  // A service listed without subscribe gets none.
  t.deepEqual(mergeConfig({ broker: { services: { telemetry: { subscribe: ['devices/#'] } } } }).broker.services, { telemetry: { publish: [], subscribe: ['devices/#'] } });
});

test('the model maps extend the default models; broker.services replaces the default services', (t) => {
  const config = mergeConfig({
    enrollment: { models: { lamp: { certificateLifetimeSeconds: DAY }, car: { certificateLifetimeSeconds: 2 * DAY } } },
    broker: { topics: { models: { lamp: { publish: ['lamps/{id}'] } } }, services: { ops: { publish: ['fleet/#'] } } },
  });
  t.deepEqual(config.enrollment.models, { ...DEFAULT_CONFIG.enrollment.models, lamp: { certificateLifetimeSeconds: DAY }, car: { certificateLifetimeSeconds: 2 * DAY } });
  t.deepEqual(config.broker.topics.models, { ...DEFAULT_CONFIG.broker.topics.models, lamp: { publish: ['lamps/{id}'] } });
  t.deepEqual(config.broker.services, { ops: { publish: ['fleet/#'], subscribe: [] } });
});

test('the caller\'s object is not changed by filling the defaults', (t) => {
  const partial = { est: { maxBodyBytes: 4096 } };
  mergeConfig(partial);
  t.deepEqual(partial, { est: { maxBodyBytes: 4096 } });
});

test('an unknown section or setting is refused, naming its path', (t) => {
  t.is(refusal(t, { brokr: {} }), 'brokr is not a known section');
  t.is(refusal(t, { est: { maxBodyByte: 10 } }), 'est.maxBodyByte is not a known setting');
  t.is(refusal(t, { broker: { limits: { maxConection: 10 } } }), 'broker.limits.maxConection is not a known setting');
  t.is(refusal(t, { enrollment: { defaultModel: { lifetime: 10 } } }), 'enrollment.defaultModel.lifetime is not a known setting');
  t.is(refusal(t, { enrollment: { models: { lamp: { certificateLifetimeSeconds: 10, extra: 1 } } } }), 'enrollment.models.lamp.extra is not a known setting');
  t.is(refusal(t, { broker: { topics: { models: { lamp: { publsh: ['a'] } } } } }), 'broker.topics.models.lamp.publsh is not a known setting');
  // Before the schema, unknown keys under `enrollment` were ignored silently.
  t.is(refusal(t, { enrollment: { clockSkew: 10 } }), 'enrollment.clockSkew is not a known setting');
});

test('a value of the wrong type is refused, naming its path', (t) => {
  t.is(refusal(t, 5), 'the configuration must be object');
  t.is(refusal(t, []), 'the configuration must be object');
  t.is(refusal(t, { listeners: 5 }), 'listeners must be object');
  t.is(refusal(t, { listeners: { maxPendingPerAddress: 'many' } }), 'listeners.maxPendingPerAddress must be integer');
  t.is(refusal(t, { est: { ratePerSecond: '10' } }), 'est.ratePerSecond must be number');
  t.is(refusal(t, { enrollment: { keyKinds: 'ec-p256' } }), 'enrollment.keyKinds must be array');
  t.is(refusal(t, { broker: { topics: { default: { publish: [7] } } } }), 'broker.topics.default.publish[0] must be string');
  t.is(refusal(t, { enrollment: { models: { lamp: {} } } }), 'enrollment.models.lamp.certificateLifetimeSeconds is required');
  t.is(refusal(t, { enrollment: { bootstrapReenroll: 'sometimes' } }), 'enrollment.bootstrapReenroll must be one of never, after-expiry, always');
  t.is(refusal(t, { enrollment: { keyKinds: ['ec-p256', 'dsa'] } }), 'enrollment.keyKinds[1] must be one of ec-p256, ec-p384, ec-p521, ed25519, rsa');
  t.regex(refusal(t, { broker: { topics: { default: { subscribe: ['devices/{name}'] } } } }), /^broker\.topics\.default\.subscribe\[0\]: "devices\/\{name\}" is not a topic filter template/);
  t.regex(refusal(t, { broker: { services: { 'Bad Name': {} } } }), /^broker\.services: "Bad Name" is not a valid service name/);
});

test('a value out of bounds is refused, naming its path and the bound', (t) => {
  t.is(refusal(t, { enrollment: { rsaMinBits: 1024 } }), 'enrollment.rsaMinBits must be >= 2048');
  t.is(refusal(t, { enrollment: { clockSkewSeconds: DAY + 1 } }), 'enrollment.clockSkewSeconds must be <= 86400');
  t.is(refusal(t, { enrollment: { renewalGraceSeconds: -1 } }), 'enrollment.renewalGraceSeconds must be >= 0');
  t.is(refusal(t, { enrollment: { keyKinds: [] } }), 'enrollment.keyKinds must NOT have fewer than 1 items');
  t.is(refusal(t, { est: { ratePerSecond: 0 } }), 'est.ratePerSecond must be > 0');
  t.is(refusal(t, { est: { maxBodyBytes: 0 } }), 'est.maxBodyBytes must be >= 1');
  t.is(refusal(t, { est: { maxBodyBytes: 1.5 } }), 'est.maxBodyBytes must be integer');
  // Node's timers hold 2^31-1 ms at most; a longer one would fire after 1 ms.
  t.is(refusal(t, { listeners: { handshakeTimeoutMs: 2 ** 31 } }), 'listeners.handshakeTimeoutMs must be <= 2147483647');
  // MQTT 3.1.1 §3.1.2.10: a 16-bit keepalive.
  t.is(refusal(t, { broker: { limits: { keepaliveMaxSeconds: 65_536 } } }), 'broker.limits.keepaliveMaxSeconds must be <= 65535');
  t.is(refusal(t, { broker: { limits: { keepaliveMinSeconds: 100, keepaliveMaxSeconds: 10 } } }), 'broker.limits.keepaliveMinSeconds exceeds broker.limits.keepaliveMaxSeconds');
  t.is(mergeConfig({ broker: { limits: { keepaliveMinSeconds: 0 } } }).broker.limits.keepaliveMinSeconds, 0);
  // Every problem of a file at once.
  t.is(refusal(t, { est: { maxBodyBytes: 0, rateBurst: 0 } }), 'est.maxBodyBytes must be >= 1; est.rateBurst must be >= 1');
});

/** Every node of the schema with its dotted path (`<name>` for the entries of a map). */
function* nodes(node: SchemaNode, path: string): Generator<[string, SchemaNode]> {
  yield [path, node];
  for (const [key, child] of Object.entries(node.properties ?? {})) yield* nodes(child, path ? `${path}.${key}` : key);
  if (typeof node.additionalProperties === 'object') yield* nodes(node.additionalProperties, `${path}.<name>`);
  if (node.items) yield* nodes(node.items, `${path}[]`);
}

test('every setting in the schema has a type and a description; every number a lower bound; every fixed setting a default (an optional one, not `required`, may have none)', (t) => {
  const optional = new Set<string>();
  for (const [path, node] of nodes(CONFIG_SCHEMA, '')) {
    for (const key of Object.keys(node.properties ?? {})) if (!(node.required ?? []).includes(key)) optional.add(path ? `${path}.${key}` : key);
  }
  t.deepEqual([...optional].filter((path) => path.includes('.') && !path.includes('<name>')).sort(), ['cluster.nodeId', 'cluster.redis', 'cluster.workers', 'registry.url'], 'the optional settings: where leaving them out means something');
  for (const [path, node] of nodes(CONFIG_SCHEMA, '')) {
    t.truthy(node.description, `${path}: description`);
    if (node.type === 'integer' || node.type === 'number') t.true(node.minimum !== undefined || node.exclusiveMinimum !== undefined, `${path}: lower bound`);
    if (node.type === 'object' && node.properties === undefined) t.truthy(node.additionalProperties, `${path}: a map says what its entries are`);
    const inMap = path.includes('<name>');
    if (path !== '' && !inMap && !path.endsWith('[]') && !optional.has(path)) t.not(node.default, undefined, `${path}: default`);
  }
});

test('loadConfig names the file; fleetgate serve refuses an invalid config.json with CONFIG_INVALID and the path, and changes nothing', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'config.json');
  await writeFile(path, `${JSON.stringify({ broker: { limits: { maxConnections: 0 } } })}\n`);
  await t.throwsAsync(loadConfig(path), { instanceOf: ConfigError, message: `${path}: broker.limits.maxConnections must be >= 1` });
  t.deepEqual(await loadConfig(join(dir, 'absent.json')), DEFAULT_CONFIG);

  const data = join(dir, 'data');
  const init = await fleetgate(['init', '--data', data]);
  t.is(init.code, 0, init.stderr);
  const config = join(data, 'config.json');
  const text = `${JSON.stringify({ est: { maxBodyBytes: 1024, requestTimeout: 5 } }, null, 2)}\n`;
  await writeFile(config, text);
  const serve = await fleetgate(['serve', '--data', data, '--host', '127.0.0.1', '--est-port', '0', '--mqtt-port', '0', '--admin-port', '0', '--metrics-port', '0']);
  t.is(serve.code, 1, serve.stderr);
  t.is(serve.stderr, `fleetgate: CONFIG_INVALID: ${config}: est.requestTimeout is not a known setting\n`);
  t.is(await readFile(config, 'utf8'), text);
});

test('the CLI loads the validator only where config.json is read: never for --help or an admin command', async (t) => {
  const dir = await tempDir(t);
  // Reports, at exit, whether any file of the ajv package was loaded (ajv is CommonJS: its modules
  // are in the require cache even when imported from ESM).
  const probe = join(dir, 'probe.mjs');
  await writeFile(
    probe,
    `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
process.on('exit', () => process.stderr.write('ajv loaded: ' + Object.keys(require.cache).some((file) => file.includes('/node_modules/ajv/')) + '\\n'));
`,
  );
  const loaded = async (args: readonly string[]): Promise<string> => {
    const result = await run(process.execPath, [...SOURCE_NODE_ARGS, '--import', probe, FLEETGATE_BIN, ...args]);
    return /ajv loaded: (\w+)/.exec(result.stderr)?.[1] ?? result.stderr;
  };
  for (const args of [['--help'], ['device', 'list', '--help'], ['audit', '--help'], ['crl', '--help'], ['bootstrap', 'trust', '--help'], ['service', 'issue', '--help']]) {
    t.is(await loaded(args), 'false', args.join(' '));
  }
  // The probe works: serve's --help loads the command module only, a script that imports the config loads ajv.
  const script = join(dir, 'load.mjs');
  await writeFile(script, `await import(${JSON.stringify(new URL('../server/src/config/config.ts', import.meta.url).href)});\n`);
  const result = await run(process.execPath, [...SOURCE_NODE_ARGS, '--import', probe, script]);
  t.regex(result.stderr, /ajv loaded: true/);
});
