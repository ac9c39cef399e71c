import test from 'ava';
import type { IncomingMessage } from 'node:http';
import { DashboardAccess } from '../server/src/dashboard/access.ts';
import { parseEventBlock } from '../server/src/dashboard/admin-events.ts';
import { DashboardError } from '../server/src/dashboard/errors.ts';
import { MinuteCounts } from '../server/src/dashboard/minute-counts.ts';

const MINUTE = 60_000;

test('MinuteCounts: per-minute buckets over the window, refusals by code, old events dropped', (t) => {
  let now = Date.parse('2026-12-02T10:30:30Z');
  const counts = new MinuteCounts(60, () => now);
  counts.add('enrolled', now);
  counts.add('enrolled', now - 10_000);
  counts.add('renewed', now - 5 * MINUTE);
  counts.add('refused', new Date(now - MINUTE).toISOString(), 'ENROLL_NOT_TRUSTED');
  counts.add('refused', now, 'BROKER_DEVICE_REVOKED');
  counts.add('refused', now, 'BROKER_DEVICE_REVOKED');
  counts.add('enrolled', now - 61 * MINUTE);
  counts.add('enrolled', 'not a time');
  let series = counts.series();
  t.is(series.minutes.length, 60);
  t.is(series.minutes.at(-1), '2026-12-02T10:30:00.000Z');
  t.is(series.enrolled.at(-1), 2);
  t.is(series.enrolled.reduce((sum, value) => sum + value, 0), 2, 'the event older than the window is not counted');
  t.is(series.renewed.at(-6), 1);
  t.deepEqual(series.refused.slice(-2), [1, 2]);
  t.deepEqual(series.refusalsByCode, [
    { code: 'BROKER_DEVICE_REVOKED', count: 2 },
    { code: 'ENROLL_NOT_TRUSTED', count: 1 },
  ]);
  // An hour later everything has left the window.
  now += 60 * MINUTE;
  series = counts.series();
  t.is(series.enrolled.reduce((sum, value) => sum + value, 0), 0);
  t.deepEqual(series.refusalsByCode, []);
});

test('parseEventBlock takes the live events of GET /v1/events and nothing else', (t) => {
  t.deepEqual(parseEventBlock('event: connected\ndata: {"type":"connected","deviceId":"lamp-1","time":"2026-12-02T10:00:00Z"}'), { type: 'connected', deviceId: 'lamp-1', time: '2026-12-02T10:00:00Z' });
  t.is(parseEventBlock(': keepalive'), undefined);
  t.is(parseEventBlock('data: {"type":"exploded","deviceId":"x","time":"t"}'), undefined);
  t.is(parseEventBlock('data: not json'), undefined);
  t.is(parseEventBlock('data: {"type":"connected"}'), undefined);
});

function requestOf(headers: Record<string, string>, method = 'GET'): IncomingMessage {
  return { headers, method } as unknown as IncomingMessage;
}

test('DashboardAccess: the token from the URL or the cookie, the Host, and the action header for state changes', (t) => {
  const access = new DashboardAccess();
  access.listeningOn(4321);
  t.regex(access.token, /^[A-Za-z0-9_-]{43}$/, '256 random bits');
  t.not(new DashboardAccess().token, access.token, 'each run makes its own');
  const url = (path: string): URL => new URL(path, 'http://dashboard.invalid');
  const code = (fn: () => void): string | undefined => t.throws(fn, { instanceOf: DashboardError })?.code;
  const host = { host: '127.0.0.1:4321' };
  t.notThrows(() => access.check(requestOf(host), url(`/?token=${access.token}`)));
  t.notThrows(() => access.check(requestOf({ ...host, cookie: `fleetgate_dashboard_1=x; fleetgate_dashboard_4321=${access.token}` }), url('/api/devices')));
  t.notThrows(() => access.check(requestOf({ host: 'localhost:4321', cookie: `fleetgate_dashboard_4321=${access.token}` }), url('/')));
  t.is(code(() => access.check(requestOf(host), url('/'))), 'DASHBOARD_TOKEN_REQUIRED');
  t.is(code(() => access.check(requestOf(host), url('/?token='))), 'DASHBOARD_TOKEN_REQUIRED');
  t.is(code(() => access.check(requestOf(host), url(`/?token=${access.token}x`))), 'DASHBOARD_TOKEN_INVALID');
  t.is(code(() => access.check(requestOf({ host: '127.0.0.1:9999' }), url(`/?token=${access.token}`))), 'DASHBOARD_HOST_REFUSED');
  t.is(code(() => access.check(requestOf({}), url(`/?token=${access.token}`))), 'DASHBOARD_HOST_REFUSED');
  t.is(code(() => access.check(requestOf({ ...host, cookie: `fleetgate_dashboard_9999=${access.token}` }), url('/'))), 'DASHBOARD_TOKEN_REQUIRED', 'the cookie of the dashboard on another port is not this one\'s');
  const cookie = { ...host, cookie: `fleetgate_dashboard_4321=${access.token}` };
  t.is(code(() => access.check(requestOf(cookie, 'POST'), url('/api/devices/x/revoke'))), 'DASHBOARD_HEADER_REQUIRED');
  t.is(code(() => access.check(requestOf({ ...cookie, 'x-fleetgate-dashboard': '0' }, 'DELETE'), url('/api/trusts/x'))), 'DASHBOARD_HEADER_REQUIRED');
  t.notThrows(() => access.check(requestOf({ ...cookie, 'x-fleetgate-dashboard': '1' }, 'POST'), url('/api/devices/x/revoke')));
  t.regex(access.sessionCookie(), /^fleetgate_dashboard_4321=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
});
