import test from 'ava';
import { once } from 'node:events';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { enrolledDevices, mqttOptions } from './helpers/device.ts';
import { REPO_ROOT } from './helpers/doc-script.ts';
import { makeDataDir } from './helpers/fleet.ts';
import { startServeProcess } from './helpers/serve-process.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * docs/operator.md ("Memory") tells operators who watch RSS to run the server with Debian's
 * jemalloc preloaded. This runs exactly the library path the guide gives (libjemalloc2, which
 * .ci/run installs): the server really maps jemalloc, a device enrolls over EST and connects over
 * MQTT, and SIGTERM still stops it with status 0.
 */

/** The `LD_PRELOAD=...` of the guide's command that starts the server. */
async function preloadOfTheGuide(): Promise<string> {
  const guide = await readFile(join(REPO_ROOT, 'docs', 'operator.md'), 'utf8');
  const library = /^LD_PRELOAD=(\S+) node_modules\/\.bin\/fleetgate serve /m.exec(guide)?.[1];
  if (!library) throw new Error('docs/operator.md has no LD_PRELOAD=... fleetgate serve command');
  return library;
}

test('fleetgate serve with jemalloc preloaded, as docs/operator.md shows: jemalloc is mapped, a device enrolls and connects, SIGTERM exits 0', async (t) => {
  const library = await preloadOfTheGuide();
  await access(library).catch(() => t.fail(`${library} is missing: apt-get install -y libjemalloc2`));

  const data = await makeDataDir(t);
  const serve = await startServeProcess(t, data.dir, data.rootPem, { mqttPort: true, env: { LD_PRELOAD: library } });
  const maps = await readFile(`/proc/${serve.child.pid}/maps`, 'utf8');
  t.true(maps.includes('libjemalloc.so.2'), 'the server process maps jemalloc');

  const [device] = await enrolledDevices(t, { ...data, estUrl: serve.estUrl });
  if (!device) throw new Error('no device enrolled');
  const client = await connectAsync(serve.mqttUrl, mqttOptions(data, device.operational));
  t.true(client.connected);
  await client.endAsync();

  const exit = once(serve.child, 'exit');
  serve.child.kill('SIGTERM');
  const [code] = await withDeadline(exit, { what: 'fleetgate serve to exit after SIGTERM', timeoutMs: 30_000 });
  t.is(code, 0, serve.output());
  t.notRegex(serve.output(), /<jemalloc>/, 'jemalloc printed no warning');
});
