import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, bashBlocks, fencedBlocks, isListening, runDocScriptOnFreePorts, tail } from './helpers/doc-script.ts';

/*
 * docs/operator.md is executable: its ```bash blocks, in order, are the operator's walk-through
 * (a lot from the factory to the field, a trusted manufacturer CA with an allow-list, a stolen
 * device revoked while connected, disable/enable, reset, audit, CRL, metrics, a second operator).
 * This test runs exactly those blocks in one bash (set -euo pipefail) in an empty directory with
 * free ports, checks what the guide claims to show, and then reads the registry it left behind.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'operator.md');
/** About 30 CLI calls at a process start each, plus openssl, curl and mosquitto. */
const TIMEOUT_MS = 120_000;

/** Lines that call an operator command of the CLI (they reach the admin API). */
const ADMIN_CALL = /\bfleetgate (device|audit|crl|bootstrap (trust|list|untrust))\b/;

test('every code block of docs/operator.md is marked bash or text, and every admin call names the server', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
  }
  const runnable = await bashBlocks(GUIDE);
  t.true(runnable.length >= 15, 'the walk-through has its steps as bash blocks');
  t.regex(runnable[0]?.body ?? '', /fleetgate init --data/, 'the walk-through starts with the setup');
  t.regex(runnable.at(-1)?.body ?? '', /kill "\$SERVER_PID"/, 'the walk-through ends by stopping the server it started');
  const script = runnable.map((block) => block.body).join('\n');
  for (const variable of ['EST_PORT', 'MQTT_PORT', 'ADMIN_PORT', 'METRICS_PORT']) {
    t.true(script.includes(`${variable}=\${${variable}:-`), `${variable} has a default`);
    t.true(script.includes(`--${variable.toLowerCase().replace('_', '-')} "$${variable}"`), `fleetgate serve gets --${variable.toLowerCase().replace('_', '-')}`);
  }
  t.true(script.includes('OPS=(--data "$DATA" --server "https://127.0.0.1:$ADMIN_PORT")'));
  t.true(script.includes('AS_ALICE=(--server "https://127.0.0.1:$ADMIN_PORT" '));
  // `audit verify --file` checks an exported file offline: it names no server.
  const calls = script.split('\n').filter((line) => !line.trim().startsWith('#') && ADMIN_CALL.test(line) && !/\baudit verify --file\b/.test(line));
  t.true(calls.length >= 15, `${calls.length} admin calls`);
  for (const line of calls) {
    t.true(/"\$\{(OPS|AS_ALICE)\[@\]\}"|--server "https:\/\/127\.0\.0\.1:\$ADMIN_PORT"/.test(line), `passes the server: ${line}`);
  }
});

test('the commands of docs/operator.md run a fleet through enrollment, trust, revocation, disable, reset and audit', async (t) => {
  const result = await runDocScriptOnFreePorts(t, GUIDE, { tempPrefix: 'fleetgate-docs-operator-', timeoutMs: TIMEOUT_MS });
  const { cwd, ports } = result;
  const { report } = result;
  t.false(result.timedOut, report);
  t.is(result.code, 0, report);
  const out = result.stdout;

  const lot = JSON.parse(await readFile(join(cwd, 'lot1.json'), 'utf8')) as { devices: { id: string }[] };
  const [d1 = '', d2 = '', d3 = ''] = lot.devices.map((device) => device.id);
  const atm = /^enrolled (acme\.atm-[0-9a-f]{12})$/m.exec(out)?.[1] ?? '';
  t.regex(atm, /^acme\.atm-/, report);

  // 1. The lot enrolls and shows up.
  t.regex(out, /fleetgate data directory ready/, report);
  t.regex(out, new RegExp(`^"adminUrl":"https://127\\.0\\.0\\.1:${ports.admin}"$`, 'm'), report);
  for (const id of [d1, d2, d3]) t.regex(out, new RegExp(`^${id}\\s+thermostat\\s+enrolled\\s+\\d{4}-`, 'm'), report);
  t.regex(out, /^3 devices$/m, report);

  // 2. The manufacturer trust: a namespace and the allow-list from the manifest, a listed device in, another out (issue #8).
  t.regex(out, /^added bootstrap trust acme: devices with a factory certificate from "fleetgate factory CA \w+" enroll as model atm$/m, report);
  t.regex(out, /^\s+allow-list\s+2 devices \(from manifest\.json\)$/m, report);
  t.regex(out, /^\s+namespace\s+acme\.$/m, report);
  t.regex(out, /^acme\s+atm\s+acme\.\s+fleetgate factory CA \w+\s+[0-9A-F:]+\.\.\.\s+2 devices\s+\S+ \S+\s+operator:operator$/m, report);
  t.regex(out, new RegExp(`^${atm}\\s+atm\\s+enrolled\\s`, 'm'), report);
  // The other id of the allow-list is known before it enrolls (issue #13).
  t.regex(out, /^acme\.atm-[0-9a-f]{12}\s+atm\s+provisioned\s/m, report);
  t.regex(out, /^2 devices \(model atm\)$/m, report);
  t.regex(out, /^ENROLL_ID_OUTSIDE_TRUST: device acme\.atm-[0-9a-f]{12} is not on the allow-list of acme\n403$/m, report);

  // A unit lost before its first boot (issue #13): provisioned from its batch, revoked, its factory credential refused.
  t.regex(out, /^batch \d{8}t\d{6}-[0-9a-f]{8}: 2 ids provisioned, 0 already known$/m, report);
  t.regex(out, /^2 devices \(state provisioned, model thermostat\)$/m, report);
  t.regex(out, /^enrollment refused: ENROLL_DEVICE_REVOKED$/m, report);
  // Operator certificates on record and revocable one by one (issue #13).
  t.regex(out, /^alice\s+[0-9A-F]+\s.*\svalid\s+first-use$/m, report);
  t.regex(out, /^operator\s+[0-9A-F]+\s.*\svalid\s+first-use$/m, report);
  t.regex(out, /^fleetgate: ADMIN_OPERATOR_REVOKED: operator certificate [0-9a-f]+ \(alice\) was revoked by operator:operator$/m, report);

  // 3. The stolen device: seen connected, revoked, dropped, refused, on the CRL.
  t.regex(out, /^connected\s+yes, since \S+ \S+ from 127\.0\.0\.1$/m, report);
  t.regex(out, new RegExp(`^device ${d1} revoked \\(keyCompromise\\): `, 'm'), report);
  t.regex(out, /^the stolen device's session was dropped \(mosquitto_sub exit \d+\)$/m, report);
  t.regex(out, /^Error: The connection was lost\.$/m, report);
  t.regex(out, /Connection Refused: not authori[sz]ed\.\n(.*\n)?reconnect refused \(mosquitto_pub exit 5\)$/m, report);
  t.regex(out, /^CRL written to \S+fleet\.crl \(DER, \d+ bytes\)$/m, report);
  t.regex(out, /^verify OK$/m, report);
  t.regex(out, /^\s+Key Compromise$/m, report);
  t.regex(out, /certificate revoked$/m, report);
  t.regex(out, /^the published CRL is the current one$/m, report);

  // 4-5. Disable and enable; a reset allows one more bootstrap enrollment.
  t.regex(out, new RegExp(`^${d2}\\s+thermostat\\s+disabled \\(battery swap\\)\\s`, 'm'), report);
  t.regex(out, new RegExp(`^device ${d2} enabled: `, 'm'), report);
  t.regex(out, new RegExp(`^ENROLL_ALREADY_ENROLLED: device ${d3} has already enrolled`, 'm'), report);
  t.regex(out, new RegExp(`^device ${d3} reset: `, 'm'), report);
  t.regex(out, /^enrolled\s+\S+ \S+ \(2 enrollments, 0 renewals\)$/m, report);
  t.regex(out, /^reset pending\s+no$/m, report);

  // 6-7. Audit, verify, metrics.
  t.regex(out, new RegExp(`^\\d+\\s+\\S+ \\S+\\s+enrolled\\s+device:${d1}\\s`, 'm'), report);
  t.regex(out, /^\d+\s+\S+ \S+\s+cert-revoked\s+system\s+keyCompromise; serial /m, report);
  t.regex(out, /^\d+\s+\S+ \S+\s+revoked\s+operator:operator\s+keyCompromise; serial /m, report);
  t.regex(out, /^audit log intact: \d+ entries, head [0-9a-f]{64}$/m, report);
  // The stolen device's revocation, and the lost unit's (revoked before its first boot: no serial).
  t.regex(out, /^\d+\s+\S+ \S+\s+revoked\s+\S+\s+operator:operator\s+keyCompromise; serial [0-9A-F]+\n(\d+\s+\S+ \S+\s+revoked\s+\S+\s+operator:operator\s+keyCompromise: lost in transit\n)?\d+ entr(y|ies)$/m, report);
  t.regex(out, /^follow stopped \(exit 0\)\n\d+\s+\S+ \S+\s+disabled\s+operator:operator\s+audit demo; serial [0-9A-F]+\n\d+\s+\S+ \S+\s+enabled\s+operator:operator\s+serial [0-9A-F]+$/m, report);
  t.regex(out, /^exported (\d+) audit entries \(1\.\.\1\) to \S+audit\.jsonl\nhead ([0-9a-f]{64})\naudit export intact: \1 entries \(1\.\.\1\), head \2 \(the recorded head\)$/m, report);
  t.regex(out, /^audit export BROKEN at entry 11 \(line 11\): the file ends at entry 10, whose hash is not the head [0-9a-f]{64}: .*\nrefused \(exit 1\)$/m, report);
  t.regex(out, /^fleetgate_enrollments_total\{operation="simpleenroll",result="issued",code=""\} 5$/m, report);
  t.regex(out, /^fleetgate_mqtt_refusals_total\{code="BROKER_DEVICE_REVOKED"\} [1-9]\d*$/m, report);

  // Operator credentials: alice acts under her name; a device certificate is refused.
  t.regex(out, /^operator alice: \S+alice\.crt, \S+alice\.key \(expires /m, report);
  t.regex(out, /^\d+\s+\S+ \S+\s+disabled\s+operator:alice\s+returned for repair; serial /m, report);
  t.regex(out, /^refused \(exit 1\)$/m, report);
  t.regex(result.stderr, /^fleetgate: ADMIN_NOT_OPERATOR: this certificate is not an operator certificate$/m, report);
  t.regex(out, /^removed bootstrap trust acme: /m, report);

  // The guide stopped the server; what it did is in the registry.
  const log = await readFile(join(cwd, 'fleetgate.log'), 'utf8');
  t.regex(log, /"msg":"fleetgate stopped"/, tail(log));
  t.false(await isListening(ports.admin), `admin port ${ports.admin} still accepts connections after the guide stopped the server`);
  const registry = await LevelRegistry.open(join(cwd, 'data', 'registry'));
  t.teardown(() => registry.close());
  t.like(await registry.getDevice(d1), { state: 'revoked', stateReason: 'keyCompromise' });
  t.like(await registry.getDevice(d2), { state: 'disabled', stateReason: 'returned for repair' });
  t.like(await registry.getDevice(d3), { state: 'enrolled', enrollments: 2, resetPending: false });
  t.like(await registry.getDevice(atm), { model: 'atm', bootstrap: { trust: 'acme' } });
  t.deepEqual(await registry.listTrusts(), []);
  t.like(await registry.verifyAudit(), { ok: true });
});
