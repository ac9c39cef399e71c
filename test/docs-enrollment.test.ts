import test from 'ava';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENROLL_ERROR_CODES, type EnrollErrorCode } from '../device-sdk/src/protocol.ts';
import { ENROLL_HTTP_STATUS } from '../server/src/enrollment/errors.ts';
import { freePort } from './helpers/ports.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * docs/enrollment.md is executable: its ```bash blocks, in order, are the whole guide. This test
 * runs exactly those blocks in one bash (set -euo pipefail) in an empty directory, the way a
 * reader pastes them from the repository root, and checks what the guide claims to show.
 */

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const GUIDE = join(REPO_ROOT, 'docs', 'enrollment.md');
/** The whole guide runs in a few seconds; this bounds a hung step. */
const SCRIPT_TIMEOUT_MS = 45_000;
/** Fence languages the guide may use: `bash` is run, the others are shown only. */
const FENCE_LANGUAGES = new Set(['bash', 'text', 'console']);

/** One fenced code block of a markdown file. */
interface FencedBlock {
  readonly language: string;
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** The top-level ``` fenced blocks of a markdown text, in order. */
function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  let open: { language: string; line: number; lines: string[] } | undefined;
  markdown.split('\n').forEach((text, index) => {
    if (open) {
      if (/^```\s*$/.test(text)) {
        blocks.push({ language: open.language, body: open.lines.join('\n'), line: open.line });
        open = undefined;
      } else {
        open.lines.push(text);
      }
      return;
    }
    const fence = /^```\s*(\S*)\s*$/.exec(text);
    if (fence) open = { language: fence[1] ?? '', line: index + 1, lines: [] };
  });
  if (open) throw new Error(`unclosed code fence at line ${open.line}`);
  return blocks;
}

/** What a bash run printed. */
interface ScriptResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs `script` in bash as the leader of a new process group, so that everything it starts in
 * the background (the guide's `fleetgate serve &`) can be found again and stopped by group id.
 */
function runScript(script: string, options: { cwd: string; env: NodeJS.ProcessEnv; onStart: (pgid: number) => void }): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-c', script], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) {
      child.once('error', reject);
      return;
    }
    options.onStart(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid as number, 'SIGKILL');
    }, SCRIPT_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Signals a process group; false if it no longer exists. */
function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const tail = (text: string, length = 4000): string => (text.length > length ? `...${text.slice(-length)}` : text);

test('every code block of docs/enrollment.md is marked bash (run) or text/console (shown)', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
  }
  const runnable = blocks.filter((block) => block.language === 'bash');
  t.true(runnable.length >= 10, 'the guide has its steps as bash blocks');
  t.regex(runnable[0]?.body ?? '', /fleetgate init --data/, 'the guide starts with the setup');
  t.regex(runnable.at(-1)?.body ?? '', /kill "\$SERVER_PID"/, 'the guide ends by stopping the server it started');
});

test('the status codes docs/enrollment.md gives next to enrollment codes are the server\'s', async (t) => {
  const guide = await readFile(GUIDE, 'utf8');
  const known = new Set<string>(ENROLL_ERROR_CODES);
  const named = [...guide.matchAll(/\bENROLL_[A-Z_]+\b/g)].map((match) => match[0]);
  t.true(named.length > 0);
  for (const code of new Set(named)) t.true(known.has(code), `${code} is not in ENROLL_ERROR_CODES`);
  // "403 `ENROLL_KEY_POLICY`", "409 with ... ENROLL_ALREADY_ENROLLED" in prose and tables.
  const pairs = [...guide.matchAll(/\b([45]\d\d)\s+`?(ENROLL_[A-Z_]+)`?/g)];
  t.true(pairs.length >= 5, 'the guide pairs statuses with codes');
  for (const [, status, code] of pairs) {
    t.is(ENROLL_HTTP_STATUS[code as EnrollErrorCode], Number(status), `the guide says ${status} for ${code}`);
  }
});

test('the commands of docs/enrollment.md enroll, refuse and renew a device against a real server', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8')).filter((block) => block.language === 'bash');
  const script = ['set -euo pipefail', ...blocks.map((block) => `# docs/enrollment.md line ${block.line}\n${block.body}`)].join('\n');

  const cwd = await tempDir(t, 'fleetgate-docs-');
  const port = await freePort();
  const [mqttPort, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // `fleetgate` as the reader gets it after `npm install`; the guide also prepends
    // $PWD/node_modules/.bin, which from the temp directory does not exist.
    PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    EST_PORT: String(port),
    MQTT_PORT: String(mqttPort),
    ADMIN_PORT: String(adminPort),
    METRICS_PORT: String(metricsPort),
    FLEETGATE_LOG_LEVEL: 'info',
  };
  // The guide's own defaults apply, not the caller's environment.
  for (const name of ['DATA', 'EST', 'FLEETGATE_DATA', 'FLEETGATE_CA_PASSPHRASE', 'OPENSSL_CONF', 'CURL_HOME']) delete env[name];

  let pgid: number | undefined;
  // Safety net: the guide stops its server itself; if it failed before that, stop it here.
  t.teardown(async () => {
    if (pgid === undefined || !killGroup(pgid, 'SIGKILL')) return;
    for (let attempt = 0; attempt < 50 && killGroup(pgid, 0); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
  });
  const result = await runScript(script, { cwd, env, onStart: (id) => (pgid = id) });
  const report = `exit ${String(result.code)} signal ${String(result.signal)}${result.timedOut ? ' (timed out)' : ''}\n--- stdout\n${tail(result.stdout)}\n--- stderr\n${tail(result.stderr)}`;
  t.false(result.timedOut, report);
  t.is(result.code, 0, report);

  const out = result.stdout;
  // Setup, cacerts, csrattrs.
  t.regex(out, /fleetgate data directory ready/, report);
  t.regex(out, /device\/cacerts\.pem: OK/, report);
  t.regex(out, /:prime256v1/, report);
  // Enrollment, verified by openssl as a strict TLS client certificate.
  t.regex(out, /simpleenroll: HTTP 200/, report);
  t.regex(out, /^device\/device\.crt: OK$/m, report);
  // The refusals the guide shows.
  t.regex(out, /^HTTP\/1\.1 409 Conflict\r?$/m, report);
  t.regex(out, /^fleetgate-error-code: ENROLL_ALREADY_ENROLLED\r?$/im, report);
  t.regex(out, /^ENROLL_ALREADY_ENROLLED: device \S+ has already enrolled/m, report);
  t.regex(out, /^403\nENROLL_IDENTITY_MISMATCH: /m, report);
  t.regex(out, /^403\nENROLL_KEY_POLICY: RSA-2048 key refused/m, report);
  t.regex(out, /^401\nENROLL_CLIENT_CERT_REQUIRED: /m, report);
  t.regex(out, /simpleenroll \(P-384\): HTTP 200/, report);
  // Renewal with a new key.
  t.regex(out, /simplereenroll: HTTP 200/, report);
  t.regex(out, /^device\/device-new\.crt: OK$/m, report);
  t.regex(out, /^403\nENROLL_OPERATIONAL_REQUIRED: /m, report);

  // The files the guide left behind say the same, read independently of openssl.
  const batch = JSON.parse(await readFile(join(cwd, 'factory-batch.json'), 'utf8')) as { devices: { id: string }[] };
  const deviceId = batch.devices[0]?.id ?? '';
  t.regex(deviceId, /^thermostat-[0-9a-f]{12}$/);
  const first = new X509Certificate(await readFile(join(cwd, 'device', 'device.crt')));
  const renewed = new X509Certificate(await readFile(join(cwd, 'device', 'device-new.crt')));
  const root = new X509Certificate(await readFile(join(cwd, 'data', 'ca', 'root.crt')));
  for (const certificate of [first, renewed]) {
    t.true(certificate.subject.split('\n').includes(`CN=${deviceId}`), certificate.subject);
    t.is(certificate.subjectAltName, `URI:urn:fleetgate:device:${deviceId}`);
    t.false(certificate.ca);
  }
  t.not(renewed.serialNumber, first.serialNumber);
  t.false(renewed.publicKey.export({ type: 'spki', format: 'der' }).equals(first.publicKey.export({ type: 'spki', format: 'der' })), 'renewal used a new key');
  t.false(first.checkIssued(root), 'issued by the issuing CA, not the root');

  // The guide's last block stopped the server: it shut down cleanly and freed its port.
  const log = await readFile(join(cwd, 'fleetgate.log'), 'utf8');
  t.regex(log, /"msg":"fleetgate stopped"/, tail(log));
  t.false(await isListening(port), `port ${port} still accepts connections after the guide stopped the server`);
});
