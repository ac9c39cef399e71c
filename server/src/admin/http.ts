import type { IncomingMessage, ServerResponse } from 'node:http';
import { AdminError } from './errors.ts';

/** Largest JSON body the admin API reads (an allow-list of 100k ids fits). */
export const MAX_ADMIN_BODY = 4 * 1024 * 1024;

/** The media type of every admin request body (RFC 8259 §11). */
const JSON_MEDIA_TYPE = 'application/json';

/** Whether the request announces a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Reads and parses a JSON object body. An empty body is `{}`. A body is refused before it is
 * read when it is not `application/json` (415) or announces more than `maxBytes` (413), and
 * reading stops as soon as a chunked body passes the limit. A refused request's connection is
 * closed after the answer, so the rest of a large body is not read for nothing.
 */
export async function readJson(request: IncomingMessage, response: ServerResponse, maxBytes = MAX_ADMIN_BODY): Promise<Record<string, unknown>> {
  if (!hasBody(request)) return {};
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType !== JSON_MEDIA_TYPE) {
    response.setHeader('Connection', 'close');
    throw new AdminError('ADMIN_UNSUPPORTED_MEDIA_TYPE', `the body must be ${JSON_MEDIA_TYPE} (got ${mediaType ? JSON.stringify(mediaType) : 'no Content-Type'})`);
  }
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    response.setHeader('Connection', 'close');
    throw new AdminError('ADMIN_TOO_LARGE', `the body exceeds ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      response.setHeader('Connection', 'close');
      throw new AdminError('ADMIN_TOO_LARGE', `the body exceeds ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AdminError('ADMIN_BAD_REQUEST', 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new AdminError('ADMIN_BAD_REQUEST', 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

/**
 * Refuses fields a route does not know: a misspelt field (`allowlist` for `allowList`) would
 * otherwise be ignored, and the operator would get a broader trust than they asked for.
 */
export function onlyFields(body: Record<string, unknown>, known: readonly string[]): void {
  const unknown = Object.keys(body).filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new AdminError('ADMIN_BAD_REQUEST', `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((name) => JSON.stringify(name.slice(0, 64))).join(', ')}; this request takes ${known.length > 0 ? known.join(', ') : 'no fields'}`);
  }
}

/** Decodes one percent-encoded path segment or query component; bad encoding is a 400, not a crash. */
export function decodeComponent(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new AdminError('ADMIN_BAD_REQUEST', `${what} is not valid percent-encoding (RFC 3986 §2.1) of UTF-8`);
  }
}

/**
 * Parses a query string strictly (application/x-www-form-urlencoded): bad percent-encoding, a
 * parameter the route does not take, or the same parameter twice is a 400. URLSearchParams would
 * silently keep the first value or replace bad bytes with U+FFFD.
 */
export function parseQuery(search: string, known: readonly string[]): URLSearchParams {
  const query = new URLSearchParams();
  const text = search.startsWith('?') ? search.slice(1) : search;
  if (text === '') return query;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const name = decodeComponent((at < 0 ? pair : pair.slice(0, at)).replace(/\+/g, ' '), 'a query parameter name');
    const value = decodeComponent((at < 0 ? '' : pair.slice(at + 1)).replace(/\+/g, ' '), `query parameter ${JSON.stringify(name.slice(0, 64))}`);
    if (!known.includes(name)) {
      throw new AdminError('ADMIN_BAD_REQUEST', `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; this request takes ${known.length > 0 ? known.join(', ') : 'none'}`);
    }
    if (query.has(name)) throw new AdminError('ADMIN_BAD_REQUEST', `query parameter ${name} is given more than once`);
    query.set(name, value);
  }
  return query;
}

/** A `limit` query value: a whole number from 1 to `max` in plain decimal (`1e3`, `0x10`, `-1`, `abc` are refused). */
export function limitParameter(query: URLSearchParams, max: number, fallback = max): number {
  const raw = query.get('limit');
  if (raw === null) return fallback;
  const limit = /^[1-9][0-9]{0,8}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(limit >= 1 && limit <= max)) throw new AdminError('ADMIN_BAD_REQUEST', `limit must be a whole number from 1 to ${max}`);
  return limit;
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

/** Answers a refusal: its status, `{ "error": { "code", "message" } }`, and `Retry-After` when it says when to retry. */
export function sendAdminError(response: ServerResponse, error: AdminError): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const headers: Record<string, string> = error.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(error.retryAfterSeconds) };
  sendJson(response, error.status, { error: { code: error.code, message: error.message } }, headers);
}

/** An optional string field of a JSON body. */
export function optionalString(body: Record<string, unknown>, name: string, maxLength = 1024): string | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > maxLength) throw new AdminError('ADMIN_BAD_REQUEST', `${name} must be a string of at most ${maxLength} characters`);
  return value;
}
