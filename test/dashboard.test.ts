import test from 'ava';
import { once, type EventEmitter } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Progress, parseSimArgs, simulate } from '../simulator/src/index.ts';
import { admin } from './helpers/admin-client.ts';
import { buildDashboardUi, CHROMIUM_ARGS, requireChromium, startDashboard, type DashboardProcess } from './helpers/dashboard.ts';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { DEFAULT_CONFIG } from '../server/src/config/config.ts';
import { startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { freePort } from './helpers/ports.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

/*
 * The operator dashboard in a real browser: Debian's chromium, driven by playwright-core, against
 * a real server with a simulated fleet and `fleetgate dashboard` as its own process, as an
 * operator runs it. DASHBOARD_SCREENSHOTS=docs/img also saves a screenshot of each page there
 * (the ones in docs/dashboard.md).
 */

const SCREENSHOTS = process.env.DASHBOARD_SCREENSHOTS;

/** A plain HTTP answer of the dashboard (no browser). */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const codeOf = (answer: Answer): string | undefined => (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;

async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/dashboard-${name}.png`, fullPage: true });
}

/** A simulated fleet (enrolled, connected, then gone) plus two devices of the test's own. */
async function fleetWithDevices(t: Parameters<typeof startFleet>[0]): Promise<{ fleet: Fleet; simulated: number }> {
  // Lamps get 3-day certificates: they are the overview's "expiring in 7 days".
  const config = testConfig({ enrollment: { models: { ...DEFAULT_CONFIG.enrollment.models, lamp: { certificateLifetimeSeconds: 3 * 86_400 } } } });
  const fleet = await startFleet(t, { config });
  const parsed = parseSimArgs([
    '--est', fleet.estUrl, '--mqtt', fleet.server.mqttUrl, '--admin', fleet.server.adminUrl, '--data', fleet.dir,
    '--report', await tempDir(t, 'fleetgate-sim-'), '--devices', '12', '--mix', 'thermostat=2,camera=1', '--rate', 'all', '--duration', '1s', '--traffic-scale', '0.01',
  ]);
  if (!parsed) throw new Error('simulator options');
  const outcome = await simulate(parsed, new Progress(process.stderr, true));
  t.true(outcome.passed, 'the simulated fleet ran');
  return { fleet, simulated: 12 };
}

let browser: Browser | undefined;

test.before(async () => {
  const executablePath = await requireChromium();
  await buildDashboardUi();
  browser = await chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS] });
});

test.after.always(async () => {
  await browser?.close();
});

test.serial('the dashboard answers only with its token and the action header; strict CSP; it stops on SIGTERM', async (t) => {
  const fleet = await startFleet(t);
  const dashboard = await startDashboard(t, fleet.dir, fleet.server.adminUrl);
  const headers = { host: new URL(dashboard.origin).host };
  const none = await call(`${dashboard.origin}/`);
  t.is(none.status, 401);
  t.is(codeOf(none), 'DASHBOARD_TOKEN_REQUIRED');
  t.is((await call(`${dashboard.origin}/api/devices`)).status, 401, 'the API too');
  t.is((await call(`${dashboard.origin}/app.js`)).status, 401, 'and the assets');
  const bad = await call(`${dashboard.origin}/?token=${'x'.repeat(43)}`);
  t.is(bad.status, 401);
  t.is(codeOf(bad), 'DASHBOARD_TOKEN_INVALID');
  const cookieName = `fleetgate_dashboard_${new URL(dashboard.origin).port}`;
  t.is(codeOf(await call(`${dashboard.origin}/api/devices`, { headers: { cookie: `${cookieName}=nope` } })), 'DASHBOARD_TOKEN_INVALID');

  // The first visit trades the token for a cookie and takes it out of the address bar.
  const first = await call(`${dashboard.url}`, { headers });
  t.is(first.status, 303);
  t.is(first.headers.location, '/');
  const cookie = String(first.headers['set-cookie']).split(';')[0] ?? '';
  t.regex(String(first.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
  const page = await call(`${dashboard.origin}/`, { headers: { cookie } });
  t.is(page.status, 200);
  const csp = String(page.headers['content-security-policy']);
  t.regex(csp, /default-src 'self'/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval|https?:/, 'no inline code, no other origin');
  t.notRegex(page.body, /<script>|<style>|\sstyle=|https?:\/\//, 'index.html has no inline script or style and names no other site');
  t.is(page.headers['referrer-policy'], 'no-referrer');
  t.is((await call(`${dashboard.origin}/api/devices`, { headers: { cookie } })).status, 200);

  // A state change without the page's header: 403, nothing forwarded.
  const [device] = await enrolledDevices(t, fleet, 'camera', 1);
  const forged = await call(`${dashboard.origin}/api/devices/${device!.id}/disable`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
  t.is(forged.status, 403);
  t.is(codeOf(forged), 'DASHBOARD_HEADER_REQUIRED');
  t.is((await admin(fleet, 'GET', `/v1/devices/${device!.id}`)).json<{ device: { state: string } }>().device.state, 'enrolled', 'nothing changed');
  // Another Host (DNS rebinding): refused even with the cookie.
  const rebound = await call(`${dashboard.origin}/api/devices`, { headers: { cookie, host: `evil.example:${new URL(dashboard.origin).port}` } });
  t.is(rebound.status, 403);
  t.is(codeOf(rebound), 'DASHBOARD_HOST_REFUSED');
  // The admin API's own refusals come through with their codes.
  const refused = await call(`${dashboard.origin}/api/devices?prefix=Bad`, { headers: { cookie } });
  t.is(refused.status, 400);
  t.is(codeOf(refused), 'ADMIN_BAD_REQUEST');
  t.is(codeOf(await call(`${dashboard.origin}/api/operators`, { headers: { cookie } })), 'DASHBOARD_NOT_FOUND', 'only the operations the pages use are reachable');

  // An admin API that does not answer: the dashboard still starts, and says so per request.
  const orphan = await startDashboard(t, fleet.dir, `https://127.0.0.1:${await freePort()}`);
  const unreachable = await call(`${orphan.origin}/api/devices`, { headers: { cookie: `fleetgate_dashboard_${new URL(orphan.origin).port}=${orphan.token}` } });
  t.is(unreachable.status, 502);
  t.is(codeOf(unreachable), 'DASHBOARD_ADMIN_UNREACHABLE');
  t.is((await call(`${orphan.origin}/api/devices`, { headers: { cookie: `fleetgate_dashboard_${new URL(orphan.origin).port}=${dashboard.token}` } })).status, 401, 'a token is good for its own run only');

  // --open hands the URL to the desktop's opener (xdg-open on Linux; a stand-in here that notes it).
  const bin = await tempDir(t, 'fleetgate-opener-');
  const opened = join(bin, 'opened.txt');
  await writeFile(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`, { mode: 0o755 });
  const withOpen = await startDashboard(t, fleet.dir, fleet.server.adminUrl, ['--open'], { PATH: `${bin}:${process.env.PATH ?? ''}` });
  await waitFor(async () => (await readFile(opened, 'utf8').catch(() => '')) === withOpen.url, { what: '--open to open the printed URL' });

  // A live stream is open: SIGTERM still ends the process promptly and cleanly.
  const live = request(`${dashboard.origin}/api/live`, { headers: { cookie }, agent: false });
  live.on('error', () => undefined);
  live.end();
  await once(live, 'response');
  dashboard.child.kill('SIGTERM');
  const [code] = (await withDeadline(once(dashboard.child as unknown as EventEmitter, 'exit'), { what: 'the dashboard to exit on SIGTERM', timeoutMs: 15_000 })) as [number | null];
  t.is(code, 0, dashboard.output());
});

test.serial('in chromium: the overview counts the fleet, search finds a device, revoking it drops its MQTT session, live events arrive', async (t) => {
  const { fleet, simulated } = await fleetWithDevices(t);
  const [target, other] = await enrolledDevices(t, fleet, 'lamp', 2);
  const session = await connectMqtt(t, fleet, target!.operational);
  const dashboard: DashboardProcess = await startDashboard(t, fleet.dir, fleet.server.adminUrl);
  const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));

  // Overview: the counts the registry holds (read independently, through the device listing).
  const listed = (await admin(fleet, 'GET', '/v1/devices')).json<{ devices: { model: string; state: string }[] }>().devices;
  t.is(listed.length, simulated + 2);
  await page.goto(dashboard.url);
  t.is(new URL(page.url()).search, '', 'the token left the address bar');
  await page.getByTestId('total-devices').filter({ hasText: String(simulated + 2) }).waitFor();
  await page.getByTestId('connected-now').filter({ hasText: '1' }).waitFor();
  for (const model of ['thermostat', 'camera', 'lamp']) {
    const count = listed.filter((device) => device.model === model).length;
    t.true(count > 0, model);
    t.is(await page.getByTestId('by-model').locator(`[data-count-of="${model}"]`).textContent(), String(count), `devices of model ${model}`);
  }
  t.is(await page.getByTestId('by-state').locator('[data-count-of="enrolled"]').textContent(), String(listed.length));
  t.is(await page.getByTestId('expiring-count').textContent(), '2', 'the two lamps expire within 7 days');
  t.deepEqual((await page.getByTestId('expiring').locator('tbody tr td:first-child').allTextContents()).sort(), [target!.id, other!.id].sort());
  const enrolledSeries = page.locator('figure[data-series="enrolled"]');
  await waitFor(async () => (await enrolledSeries.getAttribute('data-total')) === String(simulated + 2), { what: 'the enrollments chart to count every enrollment', timeoutMs: 20_000, intervalMs: 200 });
  await screenshot(page, 'overview');

  // Devices: every device on one page (50 a page), sorted by id either way by the admin API.
  await page.getByRole('link', { name: 'Devices' }).click();
  const rows = page.getByTestId('device-table').locator('tbody tr');
  const ids = (await admin(fleet, 'GET', '/v1/devices')).json<{ devices: { id: string }[] }>().devices.map((device) => device.id);
  await waitFor(async () => (await rows.count()) === ids.length, { what: 'the device list', timeoutMs: 15_000, intervalMs: 100 });
  t.is(await rows.first().getAttribute('data-device'), ids[0] ?? null);
  await screenshot(page, 'devices');
  await page.getByRole('button', { name: /^Device id/ }).click();
  await waitFor(async () => (await rows.first().getAttribute('data-device')) === ids.at(-1), { what: 'the list in descending id order', timeoutMs: 15_000, intervalMs: 100 });
  // Another column's order, both ways: the admin API's (sort=expires, ids breaking ties; the
  // lamps' 3-day certificates come first, so it is not the id order).
  const byExpiry = (await admin(fleet, 'GET', '/v1/devices?sort=expires')).json<{ devices: { id: string }[] }>().devices.map((device) => device.id);
  t.notDeepEqual(byExpiry, ids, 'the expiry order differs from the id order');
  const expiryHeader = page.getByRole('button', { name: /^Certificate expires/ });
  await expiryHeader.click();
  await waitFor(async () => JSON.stringify(await rows.evaluateAll((list) => list.map((row) => row.getAttribute('data-device')))) === JSON.stringify(byExpiry), { what: 'the list in expiry order', timeoutMs: 15_000, intervalMs: 100 });
  await expiryHeader.click();
  await waitFor(async () => (await rows.first().getAttribute('data-device')) === byExpiry.at(-1), { what: 'the list in descending expiry order', timeoutMs: 15_000, intervalMs: 100 });
  t.is(await page.locator('th[aria-sort]').count(), 1, 'one column says it orders the table');
  // Search by id prefix, through the labelled field and the keyboard.
  const search = page.getByLabel('Device id starts with');
  await search.fill(target!.id.slice(0, -2));
  await search.press('Enter');
  await waitFor(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-device')) === target!.id, { what: 'the search to list the device alone', timeoutMs: 15_000, intervalMs: 100 });

  // The device page, and a revocation behind a confirmation that names the device.
  await rows.first().getByRole('link', { name: target!.id }).click();
  await page.getByRole('heading', { name: `Device ${target!.id}` }).waitFor();
  await page.getByTestId('device-online').filter({ hasText: 'online' }).waitFor();
  await screenshot(page, 'device');
  // Keyboard: a confirmation opens from the focused button and Escape cancels it, changing nothing.
  await page.getByRole('button', { name: 'Disable…' }).focus();
  await page.keyboard.press('Enter');
  const disableDialog = page.getByRole('dialog', { name: `Disable device ${target!.id}?` });
  await disableDialog.waitFor();
  await page.keyboard.press('Escape');
  await disableDialog.waitFor({ state: 'detached' });
  t.is((await admin(fleet, 'GET', `/v1/devices/${target!.id}`)).json<{ device: { state: string } }>().device.state, 'enrolled', 'a cancelled confirmation changes nothing');
  await page.getByRole('button', { name: 'Revoke…' }).click();
  const dialog = page.getByRole('dialog', { name: `Revoke device ${target!.id}?` });
  await dialog.waitFor();
  await dialog.getByLabel('Reason (RFC 5280)').selectOption('keyCompromise');
  const dropped = once(session as unknown as EventEmitter, 'close');
  await dialog.getByRole('button', { name: `Revoke ${target!.id}` }).click();
  await withDeadline(dropped, { what: 'the revoked device\'s MQTT session to be closed by the broker', timeoutMs: 15_000 });
  await page.getByTestId('device-state').filter({ hasText: 'revoked' }).waitFor();
  t.is((await admin(fleet, 'GET', `/v1/devices/${target!.id}`)).json<{ device: { state: string } }>().device.state, 'revoked');
  t.regex((await page.getByTestId('certificates').textContent()) ?? '', /revoked \(keyCompromise/);

  // Live: a connect, and a refusal, appear without a reload.
  await page.getByRole('link', { name: 'Live' }).click();
  await page.getByTestId('live-status').filter({ hasText: 'live' }).waitFor();
  await connectMqtt(t, fleet, other!.operational);
  await page.locator(`[data-testid="live-events"] li[data-type="connected"][data-device="${other!.id}"]`).waitFor({ timeout: 15_000 });
  await connectMqtt(t, fleet, target!.operational).then(
    () => t.fail('a revoked device connected'),
    () => undefined,
  );
  await page.locator(`[data-testid="live-events"] li[data-type="refused"][data-device="${target!.id}"]`).waitFor({ timeout: 15_000 });
  await page.locator(`[data-testid="live-events"] li[data-type="audit"][data-device="${target!.id}"]`).first().waitFor({ timeout: 15_000 });
  await screenshot(page, 'live');

  // Trusts: a manufacturer CA uploaded as a PEM file, listed, then untrusted behind a confirmation.
  const acme = await manufacturer('Acme');
  await page.getByRole('link', { name: 'Trusts' }).click();
  await page.getByRole('heading', { name: 'Trust a manufacturer CA' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('acme');
  await page.getByLabel('Model', { exact: true }).fill('sensor');
  await page.getByLabel('Id namespace (prefix)').fill('acme-');
  await page.getByLabel('CA certificate (PEM file)').setInputFiles({ name: 'acme-ca.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(acme.pem) });
  await waitFor(async () => (await page.getByLabel('or paste the PEM').inputValue()) === acme.pem, { what: 'the uploaded PEM to fill the form' });
  await page.getByRole('button', { name: 'Trust', exact: true }).click();
  // The page's answer: the notice, or the admin API's refusal (reported as the failure).
  await page.locator('.notice, .error').first().waitFor();
  t.regex((await page.locator('.notice, .error').first().textContent()) ?? '', /^Trusted acme \(/);
  await page.getByTestId('trusts').locator('tr', { hasText: 'acme' }).waitFor();
  t.like((await admin(fleet, 'GET', '/v1/trusts')).json<{ trusts: { name: string; model: string; namespace: string }[] }>().trusts.find((trust) => trust.name === 'acme'), { model: 'sensor', namespace: 'acme-' });
  await screenshot(page, 'trusts');
  await page.getByTestId('trusts').locator('tr', { hasText: 'acme' }).getByRole('button', { name: 'Untrust…' }).click();
  await page.getByRole('dialog', { name: 'Untrust acme?' }).getByRole('button', { name: 'Untrust acme' }).click();
  await page.getByText('acme is no longer trusted.').waitFor();
  t.false((await admin(fleet, 'GET', '/v1/trusts')).json<{ trusts: { name: string }[] }>().trusts.some((trust) => trust.name === 'acme'));

  // Audit: the chain verifies; a filter by type lists the revocation alone.
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByTestId('chain').filter({ hasText: 'Intact' }).waitFor();
  await page.getByTestId('audit').locator('tbody tr').first().waitFor();
  await screenshot(page, 'audit');
  await page.getByLabel('Type').selectOption('revoked');
  await page.getByRole('button', { name: 'Filter' }).click();
  await waitFor(async () => (await page.getByTestId('audit').locator('tbody tr').count()) === 1, { what: 'the audit filter to list the one revocation' });
  t.regex((await page.getByTestId('audit').locator('tbody tr').textContent()) ?? '', new RegExp(`revoked${target!.id}operator:`));

  // Readable on a phone-sized window: nothing wider than the screen but the tables' own scroll.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [link, ready] of [['Devices', 'device-table'], ['Trusts', 'trust-form'], ['Audit', 'audit'], ['Live', 'live-events'], ['Overview', 'total-devices']] as const) {
    await page.getByRole('link', { name: link, exact: true }).click();
    await page.getByTestId(ready).waitFor();
    // Evaluated in the page (a string: the test's own types have no DOM).
    t.true(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'), `${link}: no horizontal scroll on a phone`);
  }
  // The refused reconnection of the revoked device is on the overview now: by code, and per minute.
  t.is(await page.getByTestId('refusals-by-code').locator('[data-count-of="BROKER_DEVICE_REVOKED"]').textContent(), '1');
  t.is(await page.locator('figure[data-series="refused"]').getAttribute('data-total'), '1');
  await screenshot(page, 'phone');
  t.deepEqual(problems, [], 'no script error and no CSP violation in the console');
});
