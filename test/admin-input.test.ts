import test from 'ava';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { MAX_ADMIN_BODY } from '../server/src/admin/http.ts';
import { admin } from './helpers/admin-client.ts';
import { enrolledDevices } from './helpers/device.ts';
import { startFleet, type Fleet } from './helpers/fleet.ts';
import { manufacturer } from './helpers/manufacturer.ts';

/*
 * Issue #13 (admin part): bad input to any admin route is a 400, 413 or 415 with a code, never a
 * 500, and changes nothing. Requests go over real mTLS with the operator certificate; some are
 * written byte by byte, as a client that does not encode properly would send them.
 */

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
  readonly message: string;
}

function parse(status: number, text: string): Answer {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    return { status, code: body.error?.code, message: body.error?.message ?? '' };
  } catch {
    return { status, code: undefined, message: text };
  }
}

/** One request with the operator certificate, headers and body exactly as given. */
async function send(fleet: Fleet, method: string, path: string, options: { headers?: Record<string, string | number>; body?: string | Buffer } = {}): Promise<Answer> {
  const [cert, key] = await Promise.all([readFile(fleet.layout.operatorCert, 'utf8'), readFile(fleet.layout.operatorKey, 'utf8')]);
  const url = new URL(fleet.server.adminUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, ca: fleet.rootPem, cert, key, agent: false, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(parse(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
      res.on('error', reject);
    });
    // The server may answer and close before it has read a large body: that is the point.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    req.end(options.body);
  });
}

/** A raw HTTP/1.1 request line over mTLS, for targets Node's client would not send. */
async function sendRaw(fleet: Fleet, head: string): Promise<Answer> {
  const [cert, key] = await Promise.all([readFile(fleet.layout.operatorCert, 'utf8'), readFile(fleet.layout.operatorKey, 'utf8')]);
  const url = new URL(fleet.server.adminUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ca: fleet.rootPem, cert, key }, () => socket.end(`${head}\r\nHost: admin\r\nConnection: close\r\n\r\n`));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve(parse(status, text.slice(text.indexOf('\r\n\r\n') + 4)));
    });
  });
}

/** A JSON body with its length (Node's client sends a DELETE body neither chunked nor with a length otherwise). */
function json(body: unknown): { headers: Record<string, string | number>; body: string } {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return { headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, body: text };
}

test('bad percent-encoding in the path or the query is a 400 ADMIN_BAD_REQUEST, not a 500', async (t) => {
  const fleet = await startFleet(t);
  const cases: ReadonlyArray<[string, string]> = [
    ['GET', '/v1/devices/%E0%A4%A'],
    ['GET', '/v1/devices/%ZZ'],
    ['GET', '/v1/devices/%'],
    ['POST', '/v1/devices/%E0%A4%A/revoke'],
    ['POST', '/v1/devices/%C0%AF/disable'],
    ['PUT', '/v1/trusts/%E0%A4%A'],
    ['DELETE', '/v1/trusts/%FF'],
    ['GET', '/v1/devices?limit=%E0%A4%A'],
    ['GET', '/v1/devices?%FF=1'],
    ['GET', '/v1/audit?device=%E0%A4%A'],
  ];
  for (const [method, path] of cases) {
    const answer = await send(fleet, method, path);
    t.is(answer.status, 400, `${method} ${path}: ${answer.message}`);
    t.is(answer.code, 'ADMIN_BAD_REQUEST', `${method} ${path}`);
    t.regex(answer.message, /percent-encoding/, `${method} ${path}`);
  }
  const encodedSlash = await send(fleet, 'GET', '/v1/devices/a%2Fb');
  t.is(encodedSlash.status, 400, 'an encoded slash decodes into no device id');
  t.is(encodedSlash.code, 'ADMIN_BAD_REQUEST');
});

test('bad query values: limit -1, 0, abc, 1e3, 0x10, 1.5, empty, too large; unknown, repeated or bad parameters: 400 each', async (t) => {
  const fleet = await startFleet(t);
  const paths = [
    ...['-1', '0', 'abc', '1e3', '0x10', '1.5', '', '%20', '10001', '99999999999999999999'].map((limit) => `/v1/devices?limit=${limit}`),
    ...['-1', 'abc', '1e3', '100001'].map((limit) => `/v1/audit?limit=${limit}`),
    '/v1/devices?limt=5',
    '/v1/devices?limit=1&limit=2',
    '/v1/devices?state=lost',
    '/v1/devices?model=Thermostat',
    '/v1/devices?after=..%2Fx',
    '/v1/audit?since=yesterday',
    '/v1/audit?since=1',
    '/v1/audit?since=',
    '/v1/audit?device=Not%20An%20Id',
    '/v1/audit?type=refusd',
    '/v1/audit?order=up',
    '/v1/audit?after=-1',
    '/v1/audit?until=tomorrow',
    '/v1/audit/verify?x=1',
    '/v1/trusts?limit=5',
    '/v1/crl?format=pem',
  ];
  for (const path of paths) {
    const answer = await send(fleet, 'GET', path);
    t.is(answer.status, 400, `${path}: ${answer.message}`);
    t.is(answer.code, 'ADMIN_BAD_REQUEST', path);
  }
  // Good values still work.
  for (const path of ['/v1/devices?limit=1', '/v1/devices?limit=10000&state=enrolled', '/v1/audit?limit=5&since=2026-01-01T00:00:00Z', '/v1/audit?since=2026-01-01', '/v1/audit?type=refused,revoked&actor=operator:&order=oldest&after=0&before=10&until=2027-01-01', '/v1/devices?model=thermostat&after=thermostat-0']) {
    t.is((await send(fleet, 'GET', path)).status, 200, path);
  }
});

test('request bodies: invalid JSON, not an object, wrong types, unknown fields 400; wrong media type 415; too large 413; nothing changes', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  const id = device?.id ?? '';
  const acme = await manufacturer('ACME');
  const lastSeq = Math.max(...(await fleet.server.registry.readAudit({})).map((entry) => entry.seq));
  const revoke = `/v1/devices/${id}/revoke`;
  const badRequests: ReadonlyArray<[string, string, { headers?: Record<string, string | number>; body?: string | Buffer }]> = [
    ['POST', revoke, json('{"reason": ')],
    ['POST', revoke, json('[]')],
    ['POST', revoke, json('"keyCompromise"')],
    ['POST', revoke, json('null')],
    ['POST', revoke, json({ reason: 5 })],
    ['POST', revoke, json({ reason: ['keyCompromise'] })],
    ['POST', revoke, json({ reason: 'x'.repeat(1025) })],
    ['POST', revoke, json({ reasn: 'typo' })],
    ['POST', revoke, json({ reason: [[[[[[[[[[]]]]]]]]]] })],
    ['POST', revoke, json(`{"reason": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`)],
    ['POST', revoke, { headers: { 'content-type': 'application/json', 'content-length': 4 }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }],
    ['POST', `/v1/devices/${id}/disable`, json({ reason: 'x', extra: true })],
    ['POST', `/v1/devices/${id}/enable`, json({ actor: 'operator:root' })],
    ['POST', `/v1/devices/${id}/reset`, json({ reason: 'reset has no reason' })],
    ['PUT', '/v1/trusts/acme', json({ model: 'atm', caPem: acme.pem, namespace: 'acme.', allowlist: ['acme.1'] })],
    ['PUT', '/v1/trusts/acme', json({ model: 'atm', caPem: acme.pem, namespace: 'acme.', name: 'other' })],
    ['DELETE', '/v1/trusts/acme', json({ force: true })],
    ['DELETE', '/v1/trusts/Not%20A%20Name', {}],
  ];
  for (const [method, path, options] of badRequests) {
    const answer = await send(fleet, method, path, options);
    t.is(answer.status, 400, `${method} ${path} ${String(options.body).slice(0, 60)}: ${answer.message}`);
    t.is(answer.code, 'ADMIN_BAD_REQUEST', `${method} ${path} ${String(options.body).slice(0, 60)}: ${answer.message}`);
  }
  const trustTypes: ReadonlyArray<Record<string, unknown>> = [
    { model: 5, caPem: acme.pem, namespace: 'acme.' },
    { model: 'atm', caPem: [acme.pem], namespace: 'acme.' },
    { model: 'atm', caPem: acme.pem, namespace: 'acme.', allowList: { id: 'acme.1' } },
    { model: 'atm', caPem: acme.pem, namespace: ['acme.'] },
  ];
  // Many BEGIN lines and no END: bounded before the (quadratic) PEM parser sees it.
  const started = Date.now();
  const pemBomb = await send(fleet, 'PUT', '/v1/trusts/acme', json({ model: 'atm', caPem: '-----BEGIN CERTIFICATE-----'.repeat(150_000), namespace: 'acme.' }));
  t.is(pemBomb.status, 400);
  t.is(pemBomb.code, 'ADMIN_TRUST_INVALID');
  t.true(Date.now() - started < 10_000, `answered in ${Date.now() - started} ms`);
  const longChain = await send(fleet, 'PUT', '/v1/trusts/acme', json({ model: 'atm', caPem: acme.pem.repeat(9), namespace: 'acme.' }));
  t.is(longChain.status, 400);
  t.regex(longChain.message, /at most 8/);
  for (const body of trustTypes) {
    const answer = await send(fleet, 'PUT', '/v1/trusts/acme', json(body));
    t.is(answer.status, 400, JSON.stringify(body).slice(0, 80));
    t.is(answer.code, 'ADMIN_TRUST_INVALID');
  }

  const mediaTypes: ReadonlyArray<Record<string, string>> = [{ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, {}];
  for (const headers of mediaTypes) {
    const answer = await send(fleet, 'POST', revoke, { headers, body: '{"reason":"keyCompromise"}' });
    t.is(answer.status, 415, JSON.stringify(headers));
    t.is(answer.code, 'ADMIN_UNSUPPORTED_MEDIA_TYPE');
  }
  const disabled = await send(fleet, 'POST', `/v1/devices/${id}/disable`, { headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: '{}' });
  t.is(disabled.status, 200, `media type parameters and case are fine: ${disabled.message}`);
  t.is((await admin(fleet, 'POST', `/v1/devices/${id}/enable`)).status, 200);

  const huge = Buffer.alloc(MAX_ADMIN_BODY + 1, 0x20);
  const declared = await send(fleet, 'PUT', '/v1/trusts/acme', { headers: { 'content-type': 'application/json', 'content-length': huge.length }, body: huge });
  t.is(declared.status, 413);
  t.is(declared.code, 'ADMIN_TOO_LARGE');
  const chunked = await send(fleet, 'PUT', '/v1/trusts/acme', { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: huge });
  t.is(chunked.status, 413, 'a chunked body is cut at the limit');
  t.is(chunked.code, 'ADMIN_TOO_LARGE');

  t.deepEqual(await fleet.server.registry.listTrusts(), [], 'no trust written');
  const after = await fleet.server.registry.readAudit({});
  t.deepEqual(after.filter((entry) => entry.seq > lastSeq).map((entry) => entry.type).filter((type) => type !== 'disabled' && type !== 'enabled'), [], 'nothing else audited');
  t.like(await fleet.server.registry.getDevice(id), { state: 'enrolled' }, 'the device was never revoked');
  t.is((await admin(fleet, 'GET', '/v1/devices')).status, 200, 'the server still answers');
});

test('a request target that is not a path, and an unparseable request, get a 400', async (t) => {
  const fleet = await startFleet(t);
  const absolute = await sendRaw(fleet, 'GET https://admin/v1/devices HTTP/1.1');
  t.is(absolute.status, 400, absolute.message);
  t.is(absolute.code, 'ADMIN_BAD_REQUEST');
  const asterisk = await sendRaw(fleet, 'OPTIONS * HTTP/1.1');
  t.is(asterisk.status, 400, asterisk.message);
  const garbage = await sendRaw(fleet, 'GET /v1/devices HTTP/1.1\r\nContent-Length: abc');
  t.is(garbage.status, 400, 'Node answers a request it cannot parse with 400');
  t.is((await admin(fleet, 'GET', '/v1/devices')).status, 200);
});
