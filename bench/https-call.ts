import type { IncomingHttpHeaders } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import type { TcpSocketConnectOpts } from 'node:net';
import type { ConnectionOptions, SecureContext, TLSSocket } from 'node:tls';

/** Where the server under test listens. Always loopback. */
export interface Target {
  readonly host: '127.0.0.1';
  readonly port: number;
}

/** One HTTPS exchange as the benchmark sees it. Never an exception: failures are data. */
export interface HttpsOutcome {
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** From just before the connection is opened to the last byte of the response. */
  readonly latencyMs: number;
  /** Negotiated TLS version and cipher suite (`TLSv1.3 TLS_AES_128_GCM_SHA256`), when the handshake completed. */
  readonly protocol: string | undefined;
  /** Network or TLS error code when there is no response (ECONNRESET, TIMEOUT ...). */
  readonly error: string | undefined;
}

/** What one call sends. */
export interface HttpsCall {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | number>>;
  readonly body?: Buffer;
  /** Client TLS material: a prebuilt context (certificate, key, trust) or just the trust anchor. */
  readonly tls: { readonly secureContext: SecureContext } | { readonly ca: string };
  readonly timeoutMs: number;
}

/**
 * One request on a fresh connection (`agent: false`): every call pays a full TLS handshake, as a
 * device enrolling for the first time does.
 */
export function httpsCall(target: Target, call: HttpsCall): Promise<HttpsOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let protocol: string | undefined;
    let settled = false;
    const finish = (outcome: Omit<HttpsOutcome, 'latencyMs' | 'protocol'>): void => {
      if (settled) return;
      settled = true;
      resolve({ ...outcome, latencyMs: performance.now() - started, protocol });
    };
    // `secureContext` and `noDelay` go through https to tls.connect; RequestOptions does not declare them.
    const options: RequestOptions & Pick<ConnectionOptions, 'secureContext'> & Pick<TcpSocketConnectOpts, 'noDelay'> = {
      host: target.host,
      port: target.port,
      method: call.method,
      path: call.path,
      agent: false,
      // Nagle would hold the client's last handshake flight back (~40 ms per TLS 1.3 handshake).
      noDelay: true,
      headers: { ...call.headers, ...(call.body ? { 'content-length': call.body.length } : {}) },
      ...call.tls,
    };
    const req = request(options, (res) => {
      const socket = res.socket as TLSSocket;
      protocol = `${socket.getProtocol() ?? 'unknown'} ${socket.getCipher().standardName}`;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => finish({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error: undefined }));
      res.on('error', (error: NodeJS.ErrnoException) => finish({ status: 0, headers: {}, body: Buffer.alloc(0), error: error.code ?? error.message }));
    });
    req.setTimeout(call.timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => finish({ status: 0, headers: {}, body: Buffer.alloc(0), error: error.code ?? error.message }));
    req.end(call.body);
  });
}
