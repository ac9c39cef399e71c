import type { IncomingMessage, ServerResponse } from 'node:http';
import { AdminError } from './errors.ts';

/** Largest JSON body the admin API reads (an allow-list of 100k ids fits). */
export const MAX_ADMIN_BODY = 4 * 1024 * 1024;

/** Reads and parses a JSON object body. An empty body is `{}`. */
export async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY) throw new AdminError('ADMIN_TOO_LARGE', `the body exceeds ${MAX_ADMIN_BODY} bytes`);
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

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

export function sendAdminError(response: ServerResponse, error: AdminError): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  sendJson(response, error.status, { error: { code: error.code, message: error.message } });
}

/** An optional string field of a JSON body. */
export function optionalString(body: Record<string, unknown>, name: string, maxLength = 1024): string | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > maxLength) throw new AdminError('ADMIN_BAD_REQUEST', `${name} must be a string of at most ${maxLength} characters`);
  return value;
}
