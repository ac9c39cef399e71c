import { connect as tcpConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';

/**
 * HTTP/1.1 over a raw TLS socket, for tests that must see the bytes a client sees: Node's http
 * client lower-cases header names, and a C EST client compares them byte for byte.
 */

/** A response as it came off the wire. */
export interface RawResponse {
  readonly status: number;
  /** Header lines exactly as sent (`Name: value`). */
  readonly headerLines: readonly string[];
  /** Header names exactly as sent, in order. */
  readonly headerNames: readonly string[];
  /** Value of a header, looked up by its exact (case-sensitive) name. */
  exact(name: string): string | undefined;
  readonly body: Buffer;
  readonly text: string;
}

/** Where and how to connect. */
export interface RawTarget {
  /** https://host:port of the EST listener. */
  readonly url: string;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  /** A loopback source address, e.g. 127.0.0.2 (one address per simulated client site). */
  readonly localAddress?: string;
}

/** Opens an mTLS connection (resolves once the handshake is done). */
export function rawConnect(target: RawTarget): Promise<TLSSocket> {
  const url = new URL(target.url);
  return new Promise((resolve, reject) => {
    // TCP first: tls.connect's types have no localAddress.
    const tcp = tcpConnect({ host: url.hostname, port: Number(url.port), localAddress: target.localAddress });
    tcp.once('error', reject);
    const socket = connect({ socket: tcp, host: url.hostname, ca: target.ca, cert: target.cert, key: target.key });
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * A request as bytes: request line, the given header lines as written, `Host` and
 * `Connection: close` unless given, and the body.
 */
export function rawRequest(method: string, path: string, headers: readonly string[] = [], body: string | Buffer = ''): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers];
  if (!headers.some((line) => /^connection:/i.test(line))) lines.push('Connection: close');
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  if (bytes.length > 0 && !headers.some((line) => /^(content-length|transfer-encoding):/i.test(line))) lines.push(`Content-Length: ${bytes.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bytes]);
}

/** Parses one complete response (after any 1xx) from the start of `data`, or undefined if incomplete. */
export function parseResponse(data: Buffer): { response: RawResponse; rest: Buffer } | undefined {
  let offset = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', offset, 'latin1');
    if (end === -1) return undefined;
    const [statusLine = '', ...headerLines] = data.subarray(offset, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0);
    if (status >= 100 && status < 200) {
      offset = end + 4;
      continue;
    }
    const headerNames = headerLines.map((line) => line.slice(0, line.indexOf(':')));
    const exact = (name: string): string | undefined => {
      const line = headerLines.find((candidate) => candidate.startsWith(`${name}:`));
      return line?.slice(name.length + 1).trim();
    };
    const lengthLine = headerLines.find((line) => /^content-length:/i.test(line));
    const length = lengthLine ? Number(lengthLine.slice(lengthLine.indexOf(':') + 1)) : 0;
    if (data.length < end + 4 + length) return undefined;
    const body = data.subarray(end + 4, end + 4 + length);
    return { response: { status, headerLines, headerNames, exact, body, text: body.toString('utf8') }, rest: data.subarray(end + 4 + length) };
  }
}

/** Reads one response from a socket (rejects if the socket closes first, or after `timeoutMs`). */
export function readResponse(socket: TLSSocket, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no complete response within ${timeoutMs} ms (got ${data.length} bytes)`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      data = Buffer.concat([data, chunk]);
      const parsed = parseResponse(data);
      if (parsed) done(undefined, parsed.response);
    };
    const onClose = (): void => done(new Error(`connection closed before a complete response (got ${data.length} bytes: ${data.toString('latin1').slice(0, 200)})`));
    function done(error: Error | undefined, response?: RawResponse): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (response) resolve(response);
      else reject(error);
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onClose);
  });
}

/** One request on a fresh connection; the connection is closed afterwards. */
export async function rawExchange(target: RawTarget, request: Buffer): Promise<RawResponse> {
  const socket = await rawConnect(target);
  try {
    const response = readResponse(socket);
    socket.write(request);
    return await response;
  } finally {
    socket.destroy();
  }
}

/** `Content-Type` -> `Content-Type`, `content-type` -> `Content-Type`: each dash-separated word capitalised. */
export function canonicalHeaderName(name: string): string {
  return name
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase())
    .join('-');
}
