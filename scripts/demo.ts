/**
 * `npm run demo`: the main job on embedded defaults. Initialises a throw-away data directory,
 * starts fleetgate, makes factory credentials for a small mixed fleet, enrolls every device
 * through EST exactly as firmware would (key on the device, CSR, mTLS with the bootstrap
 * certificate), renews some, shows a refusal, and prints what it measured.
 */
import { KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createCsr, EstClient, generateDeviceKeyPair, SdkError } from '@fleetgate/device-sdk';
import { initDataDir } from '../server/src/datadir/init.ts';
import { loadAuthorityFromDataDir, readCertificateFile } from '../server/src/datadir/authorities.ts';
import { dataLayout } from '../server/src/datadir/layout.ts';
import { issueBootstrapBatch } from '../server/src/factory/bootstrap-batch.ts';
import { startServer } from '../server/src/server.ts';

const HELP = `Usage: npm run demo [-- --devices N --concurrency C --keep]

Starts fleetgate on a temporary data directory (EST on a free loopback port), enrolls a mixed
fleet (70% thermostats, 20% cameras, 10% cars) through the real EST endpoint, renews a tenth of
them, and prints a summary. --keep leaves the data directory in place.`;

const { values } = parseArgs({
  options: { devices: { type: 'string' }, concurrency: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const deviceCount = Math.max(10, Math.min(5000, Number(values.devices ?? 300)));
const concurrency = Math.max(1, Math.min(256, Number(values.concurrency ?? 32)));

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}

const dataDir = await mkdtemp(join(tmpdir(), 'fleetgate-demo-'));
const factoryDir = join(dataDir, 'factory');
console.log(`fleetgate demo: data directory ${dataDir}`);
await initDataDir({ dataDir });
const server = await startServer({ dataDir, listen: { host: '127.0.0.1', estPort: 0, mqttPort: 0, adminPort: 0, metricsPort: 0 }, logger: pino({ level: 'warn' }) });
try {
  const layout = dataLayout(dataDir);
  const factory = await loadAuthorityFromDataDir(dataDir, 'factory');
  const root = await readCertificateFile(layout.rootCert);
  const mix = { thermostat: Math.round(deviceCount * 0.7), camera: Math.round(deviceCount * 0.2), car: 0 };
  mix.car = deviceCount - mix.thermostat - mix.camera;
  const ids: string[] = [];
  for (const [model, count] of Object.entries(mix)) {
    if (count === 0) continue;
    const manifest = await issueBootstrapBatch({ factory, root, model, count, outDir: factoryDir, validDays: 3650 });
    ids.push(...manifest.devices.slice(-count).map((entry) => entry.id));
  }
  console.log(`factory: ${ids.length} bootstrap credentials (${Object.entries(mix).map(([m, n]) => `${n} ${m}`).join(', ')}) in ${factoryDir}`);

  const rootPem = await readFile(layout.rootCert, 'utf8');
  const est = new EstClient({ url: server.estUrl, root: rootPem });
  const latencies: number[] = [];
  const refusals = new Map<string, number>();
  const operational = new Map<string, { cert: string; key: string }>();
  const started = performance.now();
  let done = 0;
  await pool(ids, concurrency, async (id) => {
    const bootstrap = { cert: await readFile(join(factoryDir, `${id}.crt`), 'utf8'), key: await readFile(join(factoryDir, `${id}.key`), 'utf8') };
    const keys = await generateDeviceKeyPair();
    const csr = await createCsr(id, keys);
    const t0 = performance.now();
    try {
      const result = await est.simpleEnroll(bootstrap, csr, KeyObject.from(keys.publicKey));
      latencies.push(performance.now() - t0);
      const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
      operational.set(id, { cert: result.chainPem, key: keyPem });
    } catch (error) {
      const code = error instanceof SdkError ? (error.serverCode ?? error.code) : 'unexpected';
      if (!refusals.has(code)) console.error(`first ${code}: ${error instanceof Error ? error.message : String(error)}`);
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
    }
    if (++done % 100 === 0 || done === ids.length) console.log(`enrolled ${operational.size}/${ids.length}`);
  });
  const elapsed = (performance.now() - started) / 1000;

  // Renew a tenth with a fresh key each, authenticated by the operational certificate.
  const renewIds = [...operational.keys()].slice(0, Math.ceil(operational.size / 10));
  let renewed = 0;
  await pool(renewIds, concurrency, async (id) => {
    const keys = await generateDeviceKeyPair();
    await est.simpleReenroll(operational.get(id) as { cert: string; key: string }, await createCsr(id, keys), KeyObject.from(keys.publicKey));
    renewed++;
  });

  // A second bootstrap enrollment of the same identity is refused, and the device learns why.
  const [firstId] = ids;
  let refusal = '';
  try {
    const keys = await generateDeviceKeyPair();
    await est.simpleEnroll(
      { cert: await readFile(join(factoryDir, `${firstId}.crt`), 'utf8'), key: await readFile(join(factoryDir, `${firstId}.key`), 'utf8') },
      await createCsr(firstId as string, keys),
      KeyObject.from(keys.publicKey),
    );
  } catch (error) {
    refusal = error instanceof SdkError ? `${error.status} ${error.message}` : String(error);
  }

  const sorted = [...latencies].sort((a, b) => a - b);
  const audit = await server.registry.verifyAudit();
  const devices = await server.registry.listDevices();
  console.log('\nsummary');
  console.table({
    'devices enrolled': operational.size,
    'enrollments/s': Math.round(operational.size / elapsed),
    'enroll latency p50 (ms)': Math.round(percentile(sorted, 50)),
    'enroll latency p99 (ms)': Math.round(percentile(sorted, 99)),
    'renewed (new key)': renewed,
    'refused during run': [...refusals.values()].reduce((a, b) => a + b, 0),
    'devices in registry': devices.length,
    'audit entries (chain verified)': audit.ok ? audit.entries : `BROKEN at ${audit.brokenAt}`,
  });
  console.log(`second enrollment of ${firstId}: ${refusal.trim()}`);
  console.log('\nMQTT telemetry and the simulator report join this demo with the broker and simulator milestones.');
  if (operational.size !== ids.length || !audit.ok) process.exitCode = 1;
} finally {
  await server.close();
  if (!values.keep) await rm(dataDir, { recursive: true, force: true });
  else console.log(`kept ${dataDir}`);
}
