import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_CODE_HEADER, MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import { EnrollmentError } from '../authority/errors.ts';
import { ENROLL_HTTP_STATUS } from './errors.ts';

/** Reads a request body up to `limit` bytes; larger bodies fail with ENROLL_TOO_LARGE. */
export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new EnrollmentError('ENROLL_TOO_LARGE', `the request body is ${declared} bytes; the limit is ${limit}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new EnrollmentError('ENROLL_TOO_LARGE', `the request body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Decodes an EST body: base64 (RFC 7030 §4.2.1, RFC 8951 §3.2), line breaks allowed, strictly
 * validated because Node's decoder silently skips garbage.
 */
export function decodeBase64Body(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/[\r\n\t ]+/g, '');
  if (text.length === 0) throw new EnrollmentError('ENROLL_BAD_BASE64', 'the request body is empty');
  if (text.length % 4 !== 0 || !BASE64.test(text)) {
    throw new EnrollmentError('ENROLL_BAD_BASE64', 'the request body is not valid base64 (RFC 7030 expects base64-encoded DER)');
  }
  return Buffer.from(text, 'base64');
}

/** Checks the media type of a request (parameters ignored). */
export function requireMediaType(request: IncomingMessage, expected: string): void {
  const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== expected) {
    throw new EnrollmentError('ENROLL_BAD_CONTENT_TYPE', `the request must be ${expected} (got ${contentType || 'no content type'})`);
  }
}

/**
 * Base64 in 64-character lines (within RFC 2045 §6.8's 76). Lines end in LF rather than CRLF so
 * that `base64 -d` and `openssl base64 -d` decode the body as it is.
 */
export function base64Lines(der: Buffer): string {
  return `${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n`;
}

/** Sends a base64 DER EST response. */
export function sendBase64(response: ServerResponse, contentType: string, der: Buffer): void {
  const body = base64Lines(der);
  response.writeHead(200, {
    'content-type': contentType,
    'content-transfer-encoding': 'base64',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** Sends a refusal: status, error code header, and `CODE: reason` as text. */
export function sendError(response: ServerResponse, error: EnrollmentError, closeConnection = false): void {
  const body = `${error.code}: ${error.message}\n`;
  const headers: Record<string, string | number> = {
    'content-type': MEDIA_TYPES.text,
    'content-length': Buffer.byteLength(body),
    [ERROR_CODE_HEADER]: error.code,
  };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = Math.max(1, Math.ceil(error.retryAfterSeconds));
  if (closeConnection) headers.connection = 'close';
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(ENROLL_HTTP_STATUS[error.code], headers);
  response.end(body);
}
