import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import { EnrollmentError } from '../authority/errors.ts';
import { ENROLL_HTTP_STATUS } from './errors.ts';

/**
 * Response header names as they go on the wire. HTTP header names are case-insensitive
 * (RFC 9110 §5.1), but deployed C EST clients compare them byte for byte against the canonical
 * spelling and discard a response that says `content-type`. Node writes names exactly as given
 * to `writeHead`, so every EST response uses these.
 */
export const HEADER = {
  contentType: 'Content-Type',
  contentLength: 'Content-Length',
  contentTransferEncoding: 'Content-Transfer-Encoding',
  retryAfter: 'Retry-After',
  connection: 'Connection',
  cacheControl: 'Cache-Control',
  errorCode: 'Fleetgate-Error-Code',
} as const;

/** The client went away before its request body was complete: there is no one to answer. */
export class RequestAborted extends Error {
  override readonly name = 'RequestAborted';
}

/** Limits on reading one request body. */
export interface BodyLimits {
  /** Largest body accepted (ENROLL_TOO_LARGE beyond). */
  readonly maxBytes: number;
  /** Time allowed for the whole body to arrive (ENROLL_BODY_TIMEOUT beyond). */
  readonly timeoutMs: number;
}

/**
 * Reads a request body within `limits`. A declared `Content-Length` over the limit is refused
 * before reading; a chunked body is counted as it arrives. On a refusal the request is left
 * alone (not destroyed): the caller answers with `Connection: close`, and the bytes still arriving
 * are read and dropped so the answer is not lost to a TCP reset.
 */
export function readBody(request: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    return Promise.reject(new EnrollmentError('ENROLL_TOO_LARGE', `the request body is ${declared} bytes; the limit is ${limits.maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      finish(new EnrollmentError('ENROLL_BODY_TIMEOUT', `the request body did not arrive within ${limits.timeoutMs} ms`));
    }, limits.timeoutMs);
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limits.maxBytes) finish(new EnrollmentError('ENROLL_TOO_LARGE', `the request body exceeds the limit of ${limits.maxBytes} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(undefined);
    const onAborted = (): void => finish(new RequestAborted('the client closed the connection before the request body was complete'));
    function finish(error: Error | undefined): void {
      clearTimeout(timer);
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('aborted', onAborted);
      request.off('error', onAborted);
      if (!error) {
        resolve(Buffer.concat(chunks));
        return;
      }
      // Drop whatever else arrives until the connection closes after the answer.
      request.on('data', discard);
      request.on('error', discard);
      reject(error);
    }
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('aborted', onAborted);
    request.on('error', onAborted);
  });
}

function discard(): void {}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Decodes an EST body: base64 (RFC 7030 §4.2.1, RFC 8951 §3.2), with or without line breaks
 * (LF or CRLF), strictly validated because Node's decoder silently skips garbage. RFC 8951 §3.2
 * makes base64 the only encoding, so a `Content-Transfer-Encoding` header, present or not, does
 * not change how the body is read.
 */
export function decodeBase64Body(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/[\r\n\t ]+/g, '');
  if (text.length === 0) throw new EnrollmentError('ENROLL_BAD_BASE64', 'the request body is empty');
  if (text.length % 4 !== 0 || !BASE64.test(text)) {
    throw new EnrollmentError('ENROLL_BAD_BASE64', 'the request body is not valid base64 (RFC 7030 expects base64-encoded DER)');
  }
  return Buffer.from(text, 'base64');
}

/** Checks the media type of a request; case and parameters (`; charset=...`) are ignored (RFC 9110 §8.3.1). */
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

/** Sends a base64 DER EST response (RFC 7030 §4.1.3, §4.2.3; RFC 8951 §3.2). */
export function sendBase64(response: ServerResponse, contentType: string, der: Buffer): void {
  const body = base64Lines(der);
  response.writeHead(200, {
    [HEADER.contentType]: contentType,
    [HEADER.contentTransferEncoding]: 'base64',
    [HEADER.contentLength]: Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * Sends a refusal: status, error code header, and `CODE: reason` as text. `closeConnection`
 * when the request body was not read to its end: the connection cannot carry another request.
 */
export function sendError(response: ServerResponse, error: EnrollmentError, closeConnection = false): void {
  const body = `${error.code}: ${error.message}\n`;
  const headers: OutgoingHttpHeaders = {
    [HEADER.contentType]: MEDIA_TYPES.text,
    [HEADER.contentLength]: Buffer.byteLength(body),
    [HEADER.errorCode]: error.code,
  };
  if (error.retryAfterSeconds !== undefined) headers[HEADER.retryAfter] = Math.max(1, Math.ceil(error.retryAfterSeconds));
  if (closeConnection) headers[HEADER.connection] = 'close';
  if (response.headersSent || response.destroyed) {
    response.destroy();
    return;
  }
  response.writeHead(ENROLL_HTTP_STATUS[error.code], headers);
  response.end(body);
}
