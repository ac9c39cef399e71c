import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ENROLL_ERROR_CODES, type EnrollErrorCode } from '../device-sdk/src/protocol.ts';
import { ENROLL_HTTP_STATUS } from '../server/src/enrollment/errors.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, fencedBlocks, isListening, runDocScriptOnFreePorts, tail } from './helpers/doc-script.ts';

/*
 * docs/enrollment.md is executable: its ```bash blocks, in order, are the whole guide. This test
 * runs exactly those blocks in one bash (set -euo pipefail) in an empty directory, the way a
 * reader pastes them from the repository root, and checks what the guide claims to show.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'enrollment.md');

test('every code block of docs/enrollment.md is marked bash (run) or text/console (shown)', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
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
  const result = await runDocScriptOnFreePorts(t, GUIDE, { tempPrefix: 'fleetgate-docs-' });
  const { cwd, ports } = result;
  const { report } = result;
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
  t.false(await isListening(ports.est), `port ${ports.est} still accepts connections after the guide stopped the server`);
});
