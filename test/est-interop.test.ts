import test, { type ExecutionContext } from 'ava';
import { X509Certificate } from 'node:crypto';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EstClient } from '../device-sdk/src/est-client.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { EST_PATHS, EST_PREFIX, MEDIA_TYPES } from '../device-sdk/src/protocol.ts';
import { factoryCredentials, startFleet, testConfig, type Credential, type Fleet } from './helpers/fleet.ts';
import { certificatesFromCertsOnly } from './helpers/pkcs7.ts';
import { canonicalHeaderName, rawExchange, rawRequest, type RawResponse, type RawTarget } from './helpers/raw-https.ts';

/*
 * Issue #9: a widely deployed C EST client compares header names byte for byte against
 * `Content-Type` / `Content-Length` and threw away certificates fleetgate had issued. These tests
 * read the raw bytes of every kind of EST response, and send requests the way other clients do.
 */

function target(fleet: Fleet, credential?: Credential): RawTarget {
  return { url: fleet.estUrl, ca: fleet.rootPem, cert: credential?.certPem, key: credential?.keyPem };
}

async function csrBase64(id: string): Promise<string> {
  return Buffer.from(await createCsr(id, await generateDeviceKeyPair())).toString('base64');
}

/** Every header name is in canonical case, and the ones a C client looks for are there byte for byte. */
function assertCanonical(t: ExecutionContext, response: RawResponse, label: string): void {
  for (const name of response.headerNames) t.is(name, canonicalHeaderName(name), `${label}: header "${name}" in canonical case`);
  t.truthy(response.exact('Content-Type'), `${label}: Content-Type`);
  t.is(Number(response.exact('Content-Length')), response.body.length, `${label}: Content-Length`);
}

/** A refusal: status, `Fleetgate-Error-Code` spelled canonically, `CODE: reason` body. */
function assertRefusal(t: ExecutionContext, response: RawResponse, status: number, code: string, label: string): void {
  t.is(response.status, status, `${label}: ${response.text}`);
  assertCanonical(t, response, label);
  t.is(response.exact('Fleetgate-Error-Code'), code, `${label}: Fleetgate-Error-Code`);
  t.true(response.text.startsWith(`${code}: `), `${label}: ${response.text}`);
}

test('cacerts, csrattrs and simpleenroll answer with canonical header names, byte for byte', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no device');

  const cacerts = await rawExchange(target(fleet), rawRequest('GET', EST_PATHS.cacerts));
  t.is(cacerts.status, 200);
  assertCanonical(t, cacerts, 'cacerts');
  t.is(cacerts.exact('Content-Type'), MEDIA_TYPES.certsOnly);
  t.is(cacerts.exact('Content-Transfer-Encoding'), 'base64');
  t.is(certificatesFromCertsOnly(cacerts.text).length, 2);

  const csrattrs = await rawExchange(target(fleet), rawRequest('GET', EST_PATHS.csrattrs));
  t.is(csrattrs.status, 200);
  assertCanonical(t, csrattrs, 'csrattrs');
  t.is(csrattrs.exact('Content-Type'), MEDIA_TYPES.csrattrs);
  t.is(csrattrs.exact('Content-Transfer-Encoding'), 'base64');

  const enrolled = await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, ['Content-Type: application/pkcs10'], await csrBase64(device.id)));
  t.is(enrolled.status, 200, enrolled.text);
  assertCanonical(t, enrolled, 'simpleenroll');
  t.is(enrolled.exact('Content-Type'), MEDIA_TYPES.certsOnly);
  t.is(enrolled.exact('Content-Transfer-Encoding'), 'base64');
  t.is(enrolled.exact('Fleetgate-Error-Code'), undefined);
  const [leaf] = certificatesFromCertsOnly(enrolled.text);
  t.true(new X509Certificate(leaf as Buffer).subject.includes(`CN=${device.id}`));
});

test('refusals (401, 400, 429, 404, 405, 413, 501) carry canonical header names, Retry-After included', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ est: { perIdentityPerMinute: 2 } }) });
  const [device, other] = await factoryCredentials(t, fleet, 'thermostat', 2);
  if (!device || !other) throw new Error('no device');
  const csr = await csrBase64(device.id);
  const pkcs10 = ['Content-Type: application/pkcs10'];

  assertRefusal(t, await rawExchange(target(fleet), rawRequest('POST', EST_PATHS.simpleenroll, pkcs10, csr)), 401, 'ENROLL_CLIENT_CERT_REQUIRED', '401');
  assertRefusal(t, await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, pkcs10, '!!not base64!!')), 400, 'ENROLL_BAD_BASE64', '400');
  assertRefusal(t, await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, pkcs10, '!!')), 400, 'ENROLL_BAD_BASE64', '400 again');
  const limited = await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, pkcs10, csr));
  assertRefusal(t, limited, 429, 'ENROLL_RATE_LIMITED', '429');
  t.true(Number(limited.exact('Retry-After')) >= 1, `Retry-After: ${limited.headerLines.join(' | ')}`);
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('GET', `${EST_PREFIX}/nothing-here`)), 404, 'ENROLL_NOT_FOUND', '404');
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('GET', EST_PATHS.simpleenroll)), 405, 'ENROLL_METHOD_NOT_ALLOWED', '405');
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('POST', `${EST_PREFIX}/serverkeygen`, pkcs10, csr)), 501, 'ENROLL_NOT_IMPLEMENTED', '501');
  const tooLarge = await rawExchange(target(fleet, other), rawRequest('POST', EST_PATHS.simpleenroll, pkcs10, 'A'.repeat(fleet.server.config.est.maxBodyBytes + 1)));
  assertRefusal(t, tooLarge, 413, 'ENROLL_TOO_LARGE', '413');
  t.is(tooLarge.exact('Connection'), 'close');
  t.is(await fleet.server.registry.getDevice(device.id), undefined, 'nothing recorded');
});

test('request bodies: base64 with CRLF or LF line breaks or none, with or without Content-Transfer-Encoding, media type with parameters or in another case', async (t) => {
  const fleet = await startFleet(t);
  const variants: readonly { readonly name: string; readonly headers: readonly string[]; readonly body: (base64: string) => string }[] = [
    { name: 'one line, no CTE', headers: ['Content-Type: application/pkcs10'], body: (b) => b },
    { name: 'CRLF every 64, CTE base64', headers: ['Content-Type: application/pkcs10', 'Content-Transfer-Encoding: base64'], body: (b) => `${(b.match(/.{1,64}/g) ?? []).join('\r\n')}\r\n` },
    { name: 'LF every 76, no CTE', headers: ['Content-Type: application/pkcs10'], body: (b) => `${(b.match(/.{1,76}/g) ?? []).join('\n')}\n` },
    { name: 'parameters', headers: ['Content-Type: application/pkcs10; charset=us-ascii', 'Content-Transfer-Encoding: BASE64'], body: (b) => b },
    { name: 'lower-case header names, other case of the type', headers: ['content-type: Application/PKCS10', 'content-transfer-encoding: base64'], body: (b) => `${b}\r\n` },
  ];
  const devices = await factoryCredentials(t, fleet, 'thermostat', variants.length);
  for (const [index, variant] of variants.entries()) {
    const device = devices[index] as Credential;
    const response = await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, variant.headers, variant.body(await csrBase64(device.id))));
    t.is(response.status, 200, `${variant.name}: ${response.text}`);
    t.is((await fleet.server.registry.getDevice(device.id))?.state, 'enrolled', variant.name);
  }
});

test('a CA label (RFC 7030 §3.2.2) is refused with 404 ENROLL_LABEL_UNKNOWN, and nothing is recorded', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no device');
  const csr = await csrBase64(device.id);
  const labelled = await rawExchange(target(fleet, device), rawRequest('POST', `${EST_PREFIX}/thermostat/simpleenroll`, ['Content-Type: application/pkcs10'], csr));
  assertRefusal(t, labelled, 404, 'ENROLL_LABEL_UNKNOWN', 'labelled simpleenroll');
  t.regex(labelled.text, /use \/\.well-known\/est\/simpleenroll/);
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('GET', `${EST_PREFIX}/camera/cacerts`)), 404, 'ENROLL_LABEL_UNKNOWN', 'labelled cacerts');
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('GET', `${EST_PREFIX}/a/b/cacerts`)), 404, 'ENROLL_NOT_FOUND', 'two labels');
  assertRefusal(t, await rawExchange(target(fleet), rawRequest('GET', `${EST_PREFIX}//cacerts`)), 404, 'ENROLL_NOT_FOUND', 'empty label');
  t.is(await fleet.server.registry.getDevice(device.id), undefined, 'no device record');
  // The unlabelled path still works for the same device afterwards.
  const enrolled = await rawExchange(target(fleet, device), rawRequest('POST', EST_PATHS.simpleenroll, ['Content-Type: application/pkcs10'], csr));
  t.is(enrolled.status, 200, enrolled.text);
});

test('serverkeygen and fullcmc, with or without a label, with any method, answer 501 ENROLL_NOT_IMPLEMENTED', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no device');
  const csr = await csrBase64(device.id);
  for (const path of ['serverkeygen', 'fullcmc', 'thermostat/serverkeygen', 'label1/fullcmc']) {
    for (const method of ['POST', 'GET']) {
      const response = await rawExchange(target(fleet, device), rawRequest(method, `${EST_PREFIX}/${path}`, method === 'POST' ? ['Content-Type: application/pkcs10'] : [], method === 'POST' ? csr : ''));
      assertRefusal(t, response, 501, 'ENROLL_NOT_IMPLEMENTED', `${method} ${path}`);
    }
  }
  t.is(await fleet.server.registry.getDevice(device.id), undefined);
});

test('the SDK EST client reads the canonical Fleetgate-Error-Code and Retry-After (names are case-insensitive)', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ est: { perIdentityPerMinute: 1 } }) });
  const [device] = await factoryCredentials(t, fleet);
  if (!device) throw new Error('no device');
  const client = new EstClient({ url: fleet.estUrl, root: fleet.rootPem });
  const keys = await generateDeviceKeyPair();
  const csr = await createCsr('another-device-0001', keys);
  const publicKey = Buffer.from(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey));
  const refused = await t.throwsAsync(client.simpleEnroll({ cert: device.certPem, key: device.keyPem }, csr, publicKey), { instanceOf: SdkError });
  t.is(refused?.serverCode, 'ENROLL_IDENTITY_MISMATCH');
  const limited = await t.throwsAsync(client.simpleEnroll({ cert: device.certPem, key: device.keyPem }, csr, publicKey), { instanceOf: SdkError });
  t.is(limited?.serverCode, 'ENROLL_RATE_LIMITED');
  t.true((limited?.retryAfterSeconds ?? 0) >= 1);
});
