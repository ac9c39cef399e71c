import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, readdir, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * The README's first command: `npm run demo` (here with a small fleet and a short run). The server
 * runs in a process of its own, stops gracefully at the end, and leaves a registry whose devices
 * and audit chain the demo checks; nothing is left behind.
 */

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('npm run demo: server in its own process, every device enrolled and connected, the server stopped cleanly, registry and audit chain checked', async (t) => {
  const reports = await tempDir(t, 'fleetgate-demo-reports-');
  const result = await run(NPM, ['run', '--silent', 'demo', '--', '--devices', '20', '--duration', '6s', '--report', reports], { cwd: REPO, timeoutMs: 110_000 });
  t.is(result.code, 0, `${result.stdout}\n${result.stderr}`);
  const out = result.stdout;
  t.regex(out, /fleetgate-sim steady: 20 devices started, 20 enrolled, 20 connected/);
  t.regex(out, /errors: 0 /);
  t.regex(out, /simulator CPU: [\d.]+ ms per device to first connection/);
  t.regex(out, /server \(http:\/\/127\.0\.0\.1:\d+\/metrics\): issuance p50/);
  t.regex(out, /server stopped \(exit code 0\)/);
  t.regex(out, /registry: 20 devices, audit chain verified \(20 entries\)/);

  const serverPid = Number(/server \(pid (\d+)\)/.exec(out)?.[1]);
  t.true(serverPid > 0, 'the server ran as a process of its own');
  t.not(serverPid, process.pid);
  t.throws(() => process.kill(serverPid, 0), { code: 'ESRCH' }, 'the server process is gone');
  const dataDir = /data directory (\S+)/.exec(out)?.[1] ?? '';
  await t.throwsAsync(access(dataDir), { code: 'ENOENT' }, 'the temporary data directory is removed');
  const written = await readdir(reports);
  t.true(written.some((name) => name.endsWith('.html')) && written.some((name) => name.endsWith('.json')), `the report in --report: ${written.join(', ')}`);
});

test('npm run demo -- --help prints the usage and starts nothing', async (t) => {
  const result = await run(NPM, ['run', '--silent', 'demo', '--', '--help'], { cwd: REPO, timeoutMs: 60_000 });
  t.is(result.code, 0);
  t.regex(result.stdout, /^Usage: npm run demo \[-- --devices N --duration D --report DIR --keep\]/);
  t.notRegex(result.stdout, /fleetgate demo: data directory/);
});

test('the demo interrupted (SIGINT) stops its server gracefully before it exits: no server left running', async (t) => {
  const reports = await tempDir(t, 'fleetgate-demo-reports-');
  // node itself, not npm: the signal must reach the demo's own process.
  const demo = spawn(process.execPath, ['--import=tsx', '--conditions=@fleetgate/source', 'scripts/demo.ts', '--devices', '20', '--duration', '60s', '--report', reports], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  demo.stderr.resume();
  const exited = once(demo, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.teardown(() => {
    demo.kill('SIGKILL');
  });
  let dataDir = '';
  const serverPid = await withDeadline(
    new Promise<number>((resolve) => {
      createInterface({ input: demo.stdout }).on('line', (line) => {
        dataDir ||= /data directory (\S+)/.exec(line)?.[1] ?? '';
        const pid = /server \(pid (\d+)\)/.exec(line)?.[1];
        if (pid) resolve(Number(pid));
      });
    }),
    { what: 'the demo starting its server', timeoutMs: 60_000 },
  );
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  t.notThrows(() => process.kill(serverPid, 0), 'the server runs');
  demo.kill('SIGINT');
  const [code] = await withDeadline(exited, { what: 'the demo exiting', timeoutMs: 30_000 });
  t.is(code, 130);
  t.throws(() => process.kill(serverPid, 0), { code: 'ESRCH' }, 'the server stopped with the demo');
});
