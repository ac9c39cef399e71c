import test from 'ava';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Backoff } from '../device-sdk/src/backoff.ts';
import { renewalDelay } from '../device-sdk/src/renewal.ts';
import { FileCredentialStore } from '../device-sdk/src/file-store.ts';
import { MemoryCredentialStore } from '../device-sdk/src/store.ts';
import { certificateFingerprint } from '../device-sdk/src/tls-sessions.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { withDeadline } from './helpers/wait.ts';

/** A deterministic random source cycling through the given values. */
const sequence = (...values: number[]) => {
  let index = 0;
  return () => values[index++ % values.length] as number;
};

test('backoff: full jitter under a doubling, capped ceiling; reset starts over', (t) => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2 }, sequence(0.999));
  t.deepEqual(Array.from({ length: 6 }, () => backoff.next()), [99, 199, 399, 799, 999, 999]);
  backoff.reset();
  t.is(backoff.next(), 99);
  const low = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2 }, sequence(0));
  t.deepEqual([low.next(), low.next()], [0, 0], 'full jitter reaches down to zero');
  const real = new Backoff({ initialMs: 1000, maxMs: 60_000, multiplier: 2 });
  const samples = Array.from({ length: 200 }, () => {
    real.reset();
    return real.next();
  });
  t.true(Math.max(...samples) - Math.min(...samples) > 500, 'spread over the window');
});

test('TLS session key: the fingerprint of the first certificate of a PEM chain, as OpenSSL gives it, without decoding the certificate', async (t) => {
  const maker = await manufacturer('Acme');
  const device = await maker.device('thermo-0001');
  const chain = `${device.certPem}${maker.pem}`;
  const expected = new X509Certificate(device.certPem).fingerprint256;
  t.is(certificateFingerprint(chain), expected);
  t.is(certificateFingerprint(chain.replace(/\n/g, '\r\n')), expected, 'CRLF line ends');
  t.is(certificateFingerprint(new X509Certificate(chain)), expected);
  t.not(certificateFingerprint(maker.pem), expected);
  t.is(certificateFingerprint(maker.pem), new X509Certificate(maker.pem).fingerprint256);
  t.throws(() => certificateFingerprint('not a certificate'), undefined, 'no PEM certificate: OpenSSL refuses it as before');
});

test('renewal at 2/3 of the lifetime minus up to 10% jitter, never negative', (t) => {
  const validity = { notBefore: 0, notAfter: 30 * 86_400_000 };
  t.is(renewalDelay(validity, 0, { at: 2 / 3, jitter: 0.1 }, () => 0), 20 * 86_400_000);
  t.is(renewalDelay(validity, 0, { at: 2 / 3, jitter: 0.1 }, () => 0.5), 18.5 * 86_400_000);
  t.is(renewalDelay(validity, 25 * 86_400_000, { at: 2 / 3, jitter: 0.1 }, () => 0), 0, 'overdue: now');
});

test('file store: atomic slots, mode 0600, directory 0700, corrupt files reported with a code', async (t) => {
  const dir = join(await tempDir(t), 'store');
  const store = await FileCredentialStore.provision(dir, { root: 'ROOT', bootstrap: { certPem: 'B-CERT', key: 'B-KEY' } });
  await store.save('operational', { certPem: 'O-CERT', key: 'O-KEY' });
  t.deepEqual(await store.load('operational'), { certPem: 'O-CERT', key: 'O-KEY' });
  t.is(await store.root(), 'ROOT');
  t.is((await stat(join(dir, 'operational.json'))).mode & 0o777, 0o600);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  await store.remove('operational');
  t.is(await store.load('operational'), undefined);
  await store.remove('operational');
  t.deepEqual((await readdir(dir)).sort(), ['bootstrap.json', 'root.crt']);
  await writeFile(join(dir, 'pending.json'), '{"certPem": "x"');
  const error = await t.throwsAsync(store.load('pending'));
  t.is((error as SdkError).code, 'SDK_STORE_CORRUPT');
  const memory = new MemoryCredentialStore('ROOT', { certPem: 'B', key: 'K' });
  t.deepEqual(await memory.load('bootstrap'), { certPem: 'B', key: 'K' });
});

test('file store survives a crash mid-write: every slot read back is whole, old or new', async (t) => {
  const dir = join(await tempDir(t), 'store');
  await FileCredentialStore.provision(dir, { root: 'ROOT', bootstrap: { certPem: 'B', key: 'K' } });
  const big = 'x'.repeat(256 * 1024);
  // A child process rewrites the operational slot as fast as it can; it is killed mid-write.
  const script = `import { FileCredentialStore } from ${JSON.stringify(new URL('../device-sdk/src/file-store.ts', import.meta.url).pathname)};
const store = new FileCredentialStore(${JSON.stringify(dir)});
for (let generation = 0; ; generation++) {
  await store.save('operational', { certPem: 'generation-' + generation + '-' + 'x'.repeat(${big.length}), key: 'key-' + generation });
  process.stdout.write('saved ' + generation + '\\n');
}`;
  for (let round = 0; round < 5; round++) {
    const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Killed while it writes the next generation, a little later in each round: after it
    // reported generation 3, 5, 7 ... as saved (its log lines, not a clock, set the moment).
    const killAfter = 3 + round * 2;
    let output = '';
    await withDeadline(
      new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes(`saved ${killAfter}\n`)) resolve();
        });
      }),
      { what: `the writer to report generation ${killAfter}`, timeoutMs: 30_000 },
    );
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const store = new FileCredentialStore(dir);
    const loaded = await store.load('operational');
    t.truthy(loaded);
    const generation = /^generation-(\d+)-/.exec(loaded?.certPem ?? '')?.[1];
    t.truthy(generation, 'a whole credential');
    t.is(loaded?.certPem.length, `generation-${generation}-`.length + big.length);
    t.is(loaded?.key, `key-${generation}`, 'key and certificate of the same generation');
  }
});
