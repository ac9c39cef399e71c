import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { MEDIA_TYPES } from '../../device-sdk/src/protocol.ts';

/** An EST response as a test sees it. */
export interface EstResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  /** The TLS handshake resumed the offered session. */
  readonly resumed: boolean;
  /** The last TLS session (ticket) the server handed out on this connection. */
  readonly session: Buffer | undefined;
}

/** One HTTPS request on a fresh connection (each enrollment is a new mTLS handshake). */
export function estRequest(options: {
  url: string;
  path: string;
  method?: 'GET' | 'POST' | 'PUT';
  body?: string | Buffer;
  contentType?: string | null;
  ca: string;
  cert?: string;
  key?: string;
  /** A TLS session from an earlier request, offered for resumption. */
  session?: Buffer;
}): Promise<EstResponse> {
  const url = new URL(options.path, options.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    const contentType = options.contentType === undefined ? MEDIA_TYPES.pkcs10 : options.contentType;
    if (options.body !== undefined && contentType !== null) headers['content-type'] = contentType;
    const req = request(
      url,
      { method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), ca: options.ca, cert: options.cert, key: options.key, agent: false, headers, ...(options.session ? { session: options.session } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), resumed: (res.socket as TLSSocket).isSessionReused(), session });
        });
        res.on('error', reject);
      },
    );
    let session: Buffer | undefined;
    req.on('socket', (socket) => (socket as TLSSocket).on('session', (ticket: Buffer) => (session = ticket)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** EST base64 body of a DER CSR. */
export function csrBody(der: Uint8Array): string {
  return `${Buffer.from(der).toString('base64')}\n`;
}
