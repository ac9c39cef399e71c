import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { pino, type Logger } from 'pino';
import { DEFAULT_CONFIG, type ServerConfig } from '../../server/src/config/config.ts';
import { loadAuthorityFromDataDir } from '../../server/src/datadir/authorities.ts';
import { initDataDir } from '../../server/src/datadir/init.ts';
import { dataLayout, type DataLayout } from '../../server/src/datadir/layout.ts';
import { issueBootstrapBatch } from '../../server/src/factory/bootstrap-batch.ts';
import { issueServiceCredential } from '../../server/src/factory/service-credential.ts';
import { issueCertificate } from '../../server/src/pki/ca.ts';
import { generateKeyPair, privateKeyToPem, spkiDer } from '../../server/src/pki/keys.ts';
import { OID } from '../../server/src/pki/oids.ts';
import { toPem } from '../../server/src/pki/pem.ts';
import type { Registry } from '../../server/src/registry/types.ts';
import { startServer, type RunningServer } from '../../server/src/server.ts';
import { deviceIdentityUri } from '../../device-sdk/src/protocol.ts';
import { tempDir } from './temp-dir.ts';

/** A device's credential as files would hold it. */
export interface Credential {
  readonly id: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** An initialised data directory (no server). */
export interface DataDir {
  readonly dir: string;
  readonly layout: DataLayout;
  readonly rootPem: string;
}

/** A running server over a fresh data directory. */
export interface Fleet extends DataDir {
  readonly server: RunningServer;
  readonly estUrl: string;
}

/** Test configuration: defaults with limits high enough for bursts. */
export function testConfig(
  overrides: { enrollment?: Partial<ServerConfig['enrollment']>; est?: Partial<ServerConfig['est']>; brokerLimits?: Partial<ServerConfig['broker']['limits']>; topics?: ServerConfig['broker']['topics']; listeners?: Partial<ServerConfig['listeners']>; tls?: Partial<ServerConfig['tls']> } = {},
): ServerConfig {
  return {
    enrollment: { ...DEFAULT_CONFIG.enrollment, ...overrides.enrollment },
    est: { ...DEFAULT_CONFIG.est, perIdentityPerMinute: 1000, ...overrides.est },
    broker: {
      topics: overrides.topics ?? DEFAULT_CONFIG.broker.topics,
      services: DEFAULT_CONFIG.broker.services,
      limits: { ...DEFAULT_CONFIG.broker.limits, presenceFlushMs: 100, ...overrides.brokerLimits },
    },
    // Load shedding off unless a test asks for it: an in-process fleet shares its event loop with
    // the test's own clients, whose bursts would read as server load (test/broker-load-shed.test.ts
    // tests shedding with its own settings).
    listeners: { ...DEFAULT_CONFIG.listeners, shedPendingConnections: 10_000, shedEventLoopDelayMs: 0, ...overrides.listeners },
    tls: { ...DEFAULT_CONFIG.tls, ...overrides.tls },
  };
}

/** Runs `fleetgate init` logic into a temp directory. */
export async function makeDataDir(t: ExecutionContext): Promise<DataDir> {
  const dir = await tempDir(t);
  await initDataDir({ dataDir: dir });
  const layout = dataLayout(dir);
  return { dir, layout, rootPem: await readFile(layout.rootCert, 'utf8') };
}

/** Starts a real server (EST on a free loopback port) over a fresh data directory. */
export async function startFleet(t: ExecutionContext, options: { config?: ServerConfig; now?: () => Date; dataDir?: DataDir; registryUrl?: string; registry?: Registry; clusterRedis?: string; nodeId?: string; logger?: Logger } = {}): Promise<Fleet> {
  const data = options.dataDir ?? (await makeDataDir(t));
  const server = await startServer({
    dataDir: data.dir,
    listen: { host: '127.0.0.1', estPort: 0, mqttPort: 0, adminPort: 0, metricsPort: 0 },
    logger: options.logger ?? pino({ level: process.env.FLEETGATE_TEST_LOG ?? 'silent' }),
    config: options.config ?? testConfig(),
    now: options.now,
    registryUrl: options.registryUrl,
    clusterRedis: options.clusterRedis,
    nodeId: options.nodeId,
    registry: options.registry,
  });
  t.teardown(() => server.close());
  return { ...data, server, estUrl: server.estUrl };
}

/** Issues `count` factory bootstrap credentials through the real batch code. */
export async function factoryCredentials(t: ExecutionContext, data: DataDir, model = 'thermostat', count = 1, options: { idPrefix?: string } = {}): Promise<Credential[]> {
  const out = await tempDir(t, 'fleetgate-factory-');
  const factory = await loadAuthorityFromDataDir(data.dir, 'factory');
  const manifest = await issueBootstrapBatch({
    factory,
    root: Buffer.from(data.rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'),
    model,
    count,
    outDir: out,
    validDays: 365,
    ...options,
  });
  return Promise.all(
    manifest.devices.map(async ({ id }) => ({
      id,
      certPem: await readFile(join(out, `${id}.crt`), 'utf8'),
      keyPem: await readFile(join(out, `${id}.key`), 'utf8'),
    })),
  );
}

/**
 * Mints a device certificate under one of the data directory's CAs with any validity, for cases
 * the normal tools refuse to make (expired bootstrap certificates, certificates from a foreign CA).
 */
export async function mintDeviceCredential(
  data: DataDir,
  options: { id: string; model?: string; ca: 'factory' | 'issuing'; notBefore?: Date; notAfter?: Date },
): Promise<Credential> {
  const ca = await loadAuthorityFromDataDir(data.dir, options.ca);
  const pair = generateKeyPair('ec-p256');
  const now = Date.now();
  const issued = await issueCertificate(ca, {
    subject: [
      { type: OID.organizationalUnitName, value: options.model ?? 'thermostat' },
      { type: OID.commonName, value: options.id },
    ],
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri(options.id) },
    notBefore: options.notBefore ?? new Date(now - 60_000),
    notAfter: options.notAfter ?? new Date(now + 86_400_000),
  });
  return {
    id: options.id,
    certPem: toPem('CERTIFICATE', issued.der) + toPem('CERTIFICATE', ca.certificate),
    keyPem: privateKeyToPem(pair.privateKey),
  };
}

/** A backend service credential (fleetgate service issue) for the broker. */
export async function serviceCredential(t: ExecutionContext, data: DataDir, name = 'backend'): Promise<Credential> {
  const out = await tempDir(t, 'fleetgate-service-');
  const issuing = await loadAuthorityFromDataDir(data.dir, 'issuing');
  const root = Buffer.from(data.rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const issued = await issueServiceCredential({ issuing, root, name, outDir: out, validDays: 30 });
  return { id: name, certPem: await readFile(issued.cert, 'utf8'), keyPem: await readFile(issued.key, 'utf8') };
}
