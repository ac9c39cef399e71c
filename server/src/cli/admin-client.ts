import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_PORTS } from '@fleetgate/device-sdk/protocol';
import { ADMIN_ERRORS, AdminError } from '../admin/errors.ts';
import { DataDirError } from '../datadir/authorities.ts';
import { dataLayout, resolveDataDir } from '../datadir/layout.ts';
import { fromPemAll } from '../pki/pem.ts';
import { UsageError } from './args.ts';
import { CliError } from './errors.ts';
import { readRecordedAdminUrl, recordedAdminUrlPath, type ServerSource } from './server-url.ts';

/*
 * The one HTTPS client of the operator CLI: every `fleetgate device|bootstrap trust|audit|crl`
 * command reaches the running server through it, with mutual TLS (an operator certificate) and
 * the fleet's root as the only trust anchor for the server.
 */

/** Where the admin API listens unless `--server` says otherwise. */
export const DEFAULT_ADMIN_URL = `https://127.0.0.1:${DEFAULT_PORTS.admin}`;

/** How long one request may take before the CLI gives up. */
export const ADMIN_TIMEOUT_MS = 30_000;

/** Everything needed to reach the admin API; paths are kept for messages. */
export interface AdminConnection {
  readonly server: URL;
  readonly cert: string;
  readonly key: string;
  /** PEM of the root that must sign the server's certificate chain. */
  readonly ca: string;
  readonly certPath: string;
  readonly rootPath: string;
  /** Where the server URL came from (for messages). */
  readonly serverSource?: string;
}

/** The connection options as the command line gives them. */
export interface ConnectionFlags {
  readonly server?: string;
  readonly data?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly root?: string;
}

/**
 * Parses `--server` (or the value named by `what`): an https URL (a path prefix is kept, for a
 * reverse proxy). A bad flag or environment variable is a usage error; a bad recorded file is not.
 */
export function parseServerUrl(value: string | undefined, what = '--server'): URL {
  const text = value ?? DEFAULT_ADMIN_URL;
  const fail = (message: string): never => {
    if (what === '--server' || what === 'FLEETGATE_SERVER') throw new UsageError(message);
    throw new CliError('CLI_INPUT_INVALID', `${message}: remove it or start \`fleetgate serve\` again`);
  };
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    fail(`${what} ${JSON.stringify(text)} is not a URL (example: ${DEFAULT_ADMIN_URL})`);
  }
  if (!url) return fail(`${what} is not a URL`);
  if (url.protocol !== 'https:') fail(`${what} must be an https:// URL (the admin API is HTTPS only), got ${text}`);
  if (url.search || url.hash || url.username || url.password) fail(`${what} takes a plain https://HOST:PORT URL, got ${text}`);
  return url;
}

/**
 * The admin API's URL: `--server` > $FLEETGATE_SERVER > the URL `fleetgate serve` recorded in
 * the data directory (`<data>/run/admin-url`) > the default (https://127.0.0.1:9443).
 */
export async function resolveServer(flag: string | undefined, dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<{ url: URL; source: ServerSource; what: string }> {
  if (flag !== undefined) return { url: parseServerUrl(flag, '--server'), source: '--server', what: '--server' };
  const fromEnv = env.FLEETGATE_SERVER;
  if (fromEnv !== undefined && fromEnv !== '') return { url: parseServerUrl(fromEnv, 'FLEETGATE_SERVER'), source: 'FLEETGATE_SERVER', what: 'FLEETGATE_SERVER' };
  const recorded = await readRecordedAdminUrl(dataDir);
  const path = recordedAdminUrlPath(dataDir);
  if (recorded !== undefined) return { url: parseServerUrl(recorded, path), source: 'recorded', what: path };
  return { url: parseServerUrl(undefined), source: 'default', what: 'the default' };
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/** Reads a file named on the command line; a failure names the flag. */
export async function readInputFile(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code ?? error);
    throw new CliError('CLI_INPUT_INVALID', `cannot read ${flag} ${path}: ${why}`, { cause: error });
  }
}

/** The certificates of a PEM file, parsed; `what` names the file in errors. */
export function pemCertificates(contents: Buffer, what: string): X509Certificate[] {
  const text = contents.toString('utf8');
  const blocks = fromPemAll(text, 'CERTIFICATE');
  if (blocks.length === 0) {
    const hint = contents[0] === 0x30 ? ' (it looks like DER: convert it with `openssl x509 -inform DER -in FILE -out FILE.pem`)' : '';
    throw new CliError('CLI_INPUT_INVALID', `${what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)${hint}`);
  }
  return blocks.map((der, index) => {
    try {
      return new X509Certificate(der);
    } catch (error) {
      throw new CliError('CLI_INPUT_INVALID', `${what}: certificate ${index + 1} of ${blocks.length} cannot be parsed`, { cause: error });
    }
  });
}

function parseKey(contents: Buffer, what: string): KeyObject {
  const text = contents.toString('utf8');
  if (text.includes('ENCRYPTED PRIVATE KEY')) throw new CliError('CLI_INPUT_INVALID', `${what} is encrypted; the CLI needs an unencrypted operator key (mode 0600)`);
  try {
    return createPrivateKey(text);
  } catch (error) {
    throw new CliError('CLI_INPUT_INVALID', `${what} is not a PEM private key`, { cause: error });
  }
}

/** Reads a file of the data directory; a failure says how to get it (DATA_NOT_INITIALIZED). */
async function readDataFile(path: string, hint: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new DataDirError('DATA_NOT_INITIALIZED', `${path} is missing or unreadable: ${hint}`, { cause: error });
  }
}

/**
 * The operator credential and trust anchor to use: `--cert/--key` when given, else
 * `<data>/operator/operator.crt|key`; the root from `--root`, else `root.crt` next to `--cert`
 * (what `fleetgate operator issue` writes) when no `--data` is given, else `<data>/ca/root.crt`.
 * Checks that the key belongs to the certificate before anything goes on the wire.
 */
export async function resolveConnection(flags: ConnectionFlags): Promise<AdminConnection> {
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new UsageError("--cert and --key go together: give both, or neither (then the data directory's operator credential is used)");
  }
  const layout = dataLayout(resolveDataDir(flags.data));
  const { url: server, what: serverSource } = await resolveServer(flags.server, layout.root);
  const own = flags.cert !== undefined && flags.key !== undefined ? { cert: resolve(flags.cert), key: resolve(flags.key) } : undefined;
  const certPath = own?.cert ?? layout.operatorCert;
  const keyPath = own?.key ?? layout.operatorKey;
  const initHint = `run \`fleetgate init --data ${layout.root}\` first, point --data at the server's data directory, or pass --cert and --key`;
  const certificate = own ? await readInputFile(certPath, '--cert') : await readDataFile(certPath, initHint);
  const key = own ? await readInputFile(keyPath, '--key') : await readDataFile(keyPath, initHint);
  const [leaf] = pemCertificates(certificate, certPath);
  if (!leaf?.checkPrivateKey(parseKey(key, keyPath))) throw new CliError('CLI_INPUT_INVALID', `${keyPath} is not the key of ${certPath}`);

  const beside = join(dirname(certPath), 'root.crt');
  let root: Buffer;
  let rootPath: string;
  if (flags.root !== undefined) {
    rootPath = resolve(flags.root);
    root = await readInputFile(rootPath, '--root');
  } else {
    rootPath = own && flags.data === undefined && (await exists(beside)) ? beside : layout.rootCert;
    root = await readDataFile(rootPath, "point --data at the server's data directory, or pass --root FILE (the fleet's ca/root.crt)");
  }
  pemCertificates(root, rootPath);
  return { server, cert: certificate.toString('utf8'), key: key.toString('utf8'), ca: root.toString('utf8'), certPath, rootPath, serverSource };
}

/** An answer of the admin API, before interpretation. */
export interface RawAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

/** Options of one request. */
export interface RequestOptions {
  /** Query parameters; undefined values are left out. */
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  /** A JSON body. */
  readonly body?: unknown;
}

const UNREACHABLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
  EADDRNOTAVAIL: 'address not available',
};

/** Node's certificate verification failures (the server's chain does not lead to our root). */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
]);

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * `{ "error": { "code", "message" } }`, the admin API's refusal, as the {@link AdminError} the
 * server threw. A code this CLI does not know (a newer server) is not one: the caller reports
 * the answer as CLI_BAD_RESPONSE, which quotes the body, code included.
 */
function apiError(value: unknown): AdminError | undefined {
  if (!isRecord(value) || !isRecord(value.error)) return undefined;
  const { code, message } = value.error;
  if (typeof code !== 'string' || typeof message !== 'string' || !Object.hasOwn(ADMIN_ERRORS, code)) return undefined;
  return new AdminError(code as keyof typeof ADMIN_ERRORS, message);
}

/** The admin API over mutual TLS. One keep-alive agent: a paged listing reuses one TLS session. */
export class AdminClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });

  constructor(
    readonly connection: AdminConnection,
    private readonly timeoutMs = ADMIN_TIMEOUT_MS,
  ) {}

  /** `https://host:port` (and path prefix) for messages. */
  get where(): string {
    return `${this.connection.server.origin}${this.connection.server.pathname.replace(/\/+$/, '')}`;
  }

  /** Sends one request; network and TLS failures become {@link CliError}s that name the server. */
  send(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: RequestOptions = {}): Promise<RawAnswer> {
    const { server } = this.connection;
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) query.set(name, String(value));
    const search = query.size > 0 ? `?${query.toString()}` : '';
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    return new Promise<RawAnswer>((resolvePromise, reject) => {
      const req = request(
        {
          method,
          host: server.hostname.replace(/^\[|\]$/g, ''),
          port: server.port || 443,
          path: `${server.pathname.replace(/\/+$/, '')}${path}${search}`,
          agent: this.agent,
          ca: this.connection.ca,
          cert: this.connection.cert,
          key: this.connection.key,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => reject(this.networkError(error)));
          response.on('end', () => resolvePromise({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
        },
      );
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(new CliError('CLI_SERVER_UNREACHABLE', `no answer from the admin API at ${this.where} within ${Math.round(this.timeoutMs / 1000)} s`));
      });
      req.on('error', (error) => reject(error instanceof CliError ? error : this.networkError(error)));
      req.end(payload);
    });
  }

  /**
   * Sends a request and returns its JSON answer once `guard` accepts its shape. A refusal
   * becomes an {@link AdminError} with the API's code; anything else unexpected, CLI_BAD_RESPONSE.
   */
  async json<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, guard: (value: unknown) => value is T, options: RequestOptions = {}): Promise<T> {
    return this.interpret(await this.send(method, path, options), guard);
  }

  /** An answer's JSON once `guard` accepts it; a refusal is thrown as an {@link AdminError} (see {@link json}). */
  interpret<T>(answer: RawAnswer, guard: (value: unknown) => value is T): T {
    let parsed: unknown;
    if (answer.contentType.startsWith('application/json')) {
      try {
        parsed = JSON.parse(answer.body.toString('utf8'));
      } catch {
        throw this.badResponse(answer, 'invalid JSON');
      }
    }
    if (answer.status >= 400) throw apiError(parsed) ?? this.badResponse(answer);
    if (answer.status !== 200 || parsed === undefined) throw this.badResponse(answer);
    if (!guard(parsed)) throw this.badResponse(answer, 'JSON of an unexpected shape');
    return parsed;
  }

  /** A binary resource (the CRL), checked against its media type. */
  async bytes(path: string, mediaType: string): Promise<Buffer> {
    const answer = await this.send('GET', path);
    if (answer.status >= 400 && answer.contentType.startsWith('application/json')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.body.toString('utf8'));
      } catch {
        // reported below
      }
      throw apiError(parsed) ?? this.badResponse(answer);
    }
    if (answer.status !== 200 || !answer.contentType.startsWith(mediaType)) throw this.badResponse(answer, `expected ${mediaType}`);
    return answer.body;
  }

  /** Closes kept-alive connections (the process can exit). */
  close(): void {
    this.agent.destroy();
  }

  private badResponse(answer: RawAnswer, detail?: string): CliError {
    const text = answer.body.toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200);
    return new CliError(
      'CLI_BAD_RESPONSE',
      `unexpected answer from ${this.where}: HTTP ${answer.status} ${answer.contentType || 'without a content type'}${detail ? ` (${detail})` : ''}${text ? `: ${text}` : ''}; is --server the fleetgate admin API?`,
    );
  }

  private networkError(error: Error): CliError {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const host = this.connection.server.hostname;
    const reason = UNREACHABLE[code];
    if (reason) {
      return new CliError(
        'CLI_SERVER_UNREACHABLE',
        `cannot reach the admin API at ${this.where} (${reason}${this.connection.serverSource && this.connection.serverSource !== '--server' ? `; URL from ${this.connection.serverSource}` : ''}): is \`fleetgate serve\` running there? Start it with \`fleetgate serve --data DIR\`, or point --server (or FLEETGATE_SERVER) at it`,
        { cause: error },
      );
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return new CliError('CLI_TLS_FAILED', `the server certificate of ${this.where} does not name ${host}: use a name it has (127.0.0.1, localhost) or add one with \`fleetgate init --hostname ${host}\` and restart the server`, { cause: error });
    }
    if (UNTRUSTED.has(code)) {
      return new CliError(
        'CLI_TLS_FAILED',
        `the server at ${this.where} is not trusted (${error.message}): its certificate does not chain to ${this.connection.rootPath}; is it the admin API of the fleet whose data directory (or --root) you gave?`,
        { cause: error },
      );
    }
    if (code === 'EPROTO' || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
      return new CliError('CLI_TLS_FAILED', `TLS with ${this.where} failed (${error.message}): is that the admin API's HTTPS port?`, { cause: error });
    }
    return new CliError('CLI_SERVER_UNREACHABLE', `the connection to the admin API at ${this.where} failed: ${error.message}`, { cause: error });
  }
}
