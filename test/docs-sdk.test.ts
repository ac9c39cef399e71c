import test from 'ava';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, docEnvironment, freeListenerPorts, isListening, runDocScript } from './helpers/doc-script.ts';

const GUIDE = join(REPO_ROOT, 'docs', 'sdk.md');

test('the thermostat of docs/sdk.md enrolls, reports telemetry, obeys a command and restarts without re-enrolling', async (t) => {
  // Inside the repository, as a reader runs it: `@fleetgate/device-sdk` and tsx resolve from there.
  await mkdir(join(REPO_ROOT, '.tmp'), { recursive: true });
  const cwd = await mkdtemp(join(REPO_ROOT, '.tmp', 'docs-sdk-'));
  t.teardown(() => rm(cwd, { recursive: true, force: true }));
  const ports = await freeListenerPorts();
  const run = await runDocScript(t, GUIDE, { cwd, env: docEnvironment(ports), timeoutMs: 60_000 });
  t.is(run.code, 0, run.report);
  const log = await readFile(join(cwd, 'thermostat.log'), 'utf8');
  t.regex(log, /^state enrolling\nstate connecting\nstate connected\n/, log);
  t.regex(log, /setpoint 23/);
  t.regex(log, /state stopped/);
  const telemetry = (await readFile(join(cwd, 'telemetry.out'), 'utf8')).trim().split('\n');
  t.is(telemetry.length, 2, telemetry.join('\n'));
  for (const line of telemetry) t.regex(line, /^devices\/thermostat-[0-9a-f]{12}\/telemetry \{"temperature":[\d.]+,"setpoint":\d+\}$/);
  t.regex(run.stdout, /state connecting\nstate connected\n/, 'second start: no enrollment');
  t.regex(run.stdout, /bootstrap\.json\s+operational\.json\s+root\.crt/);
  t.false(await isListening(ports.est), 'the guide stopped the server');
});
