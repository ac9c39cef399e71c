import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { OperatorAuthorityError } from '../authority/errors.ts';
import { RegistryError } from '../registry/errors.ts';
import { mutualTlsServerOptions } from '../tls/defaults.ts';
import { ADMIN_CODE_OF_OPERATOR_REFUSAL, AdminError } from './errors.ts';
import { decodeComponent, parseQuery, sendAdminError } from './http.ts';
import { OperatorAccess, type OperatorCredentialStore } from './operator-identity.ts';
import { readAudit, verifyAudit } from './routes/audit.ts';
import { importBatches } from './routes/batches.ts';
import { listOperators, listServices, revokeOperators, revokeServices } from './routes/credentials.ts';
import { currentCrl } from './routes/crl.ts';
import { disableDevice, disableDevices, enableDevice, enableDevices, listDevices, resetDevice, revokeDevice, revokeDevices, showDevice } from './routes/devices.ts';
import { fleetSummary, liveEvents } from './routes/fleet.ts';
import { deleteTrust, listTrusts, putTrust } from './routes/trusts.ts';
import type { AdminContext, AdminRoute } from './routes/types.ts';

const ROUTES: readonly AdminRoute[] = [
  listDevices,
  showDevice,
  revokeDevice,
  disableDevice,
  enableDevice,
  resetDevice,
  revokeDevices,
  disableDevices,
  enableDevices,
  listTrusts,
  putTrust,
  deleteTrust,
  readAudit,
  verifyAudit,
  currentCrl,
  listOperators,
  revokeOperators,
  listServices,
  revokeServices,
  importBatches,
  fleetSummary,
  liveEvents,
];

interface CompiledRoute {
  readonly route: AdminRoute;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

const COMPILED: readonly CompiledRoute[] = ROUTES.map((route) => {
  const names: string[] = [];
  const source = route.path.replace(/:([a-z]+)/g, (_match, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
});

/**
 * Splits a request target into its path (still percent-encoded, so an encoded `/` cannot make a
 * new segment) and its query. Origin form only (RFC 9112 §3.2.1): an absolute target such as
 * `https://x/v1/devices` is a 400, not something to resolve.
 */
function splitTarget(target: string): { path: string; search: string } {
  if (!target.startsWith('/')) throw new AdminError('ADMIN_BAD_REQUEST', 'the request target must be a path (origin form)');
  const at = target.search(/[?#]/);
  const path = at < 0 ? target : target.slice(0, at);
  const search = at < 0 || target[at] === '#' ? '' : target.slice(at + 1).split('#')[0] ?? '';
  return { path, search };
}

/** How long a client should wait before it retries a request the registry could not serve. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/**
 * The refusal to answer for an error a request ended with, in one place: the route's own
 * {@link AdminError}, a refusal of the operator authority under its admin code, or 503
 * `ADMIN_UNAVAILABLE` with `Retry-After` when the registry's database does not answer (whichever
 * read or write found out). Anything else is a failure (500, logged).
 */
function adminRefusal(error: unknown): AdminError | undefined {
  if (error instanceof AdminError) return error;
  if (error instanceof OperatorAuthorityError) return new AdminError(ADMIN_CODE_OF_OPERATOR_REFUSAL[error.code], error.message, { cause: error });
  if (error instanceof RegistryError && error.code === 'REGISTRY_UNAVAILABLE') {
    return new AdminError('ADMIN_UNAVAILABLE', `the registry does not answer (its database is down or unreachable): try again in ${UNAVAILABLE_RETRY_AFTER_SECONDS} s`, {
      cause: error,
      retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS,
    });
  }
  return undefined;
}

export interface AdminServerOptions {
  readonly context: AdminContext;
  /** The operator certificates on record (every request is checked against them). */
  readonly credentials: OperatorCredentialStore;
  readonly issuing: X509Certificate;
  readonly tls: { readonly key: string; readonly cert: string; readonly clientCas: readonly string[] };
}

/**
 * The admin API: HTTPS, JSON, operator client certificates only. Every state change is audited
 * with the operator's name.
 */
export function createAdminServer(options: AdminServerOptions): Server {
  const server = createServer(
    mutualTlsServerOptions(options.tls),
    (request, response) => void dispatch(request, response),
  );
  // Operator certificates on record, revoked ones refused on every request (operator-identity.ts).
  const operators = new OperatorAccess(options.credentials);
  server.on('close', () => operators.close());

  async function dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      await operators.ready;
      // From memory: who it is, and not revoked. Checked on every request, so a revocation also
      // reaches a connection kept alive from before it.
      const credential = operators.authenticate(request.socket as TLSSocket, options.issuing);
      const operator = credential.name;
      const target = splitTarget(request.url ?? '/');
      const path = target.path.replace(/\/+$/, '') || '/';
      const matching = COMPILED.filter((candidate) => candidate.pattern.test(path));
      if (matching.length === 0) throw new AdminError('ADMIN_NOT_FOUND', `no such resource ${path.slice(0, 200)}`);
      const match = matching.find((candidate) => candidate.route.method === request.method);
      if (!match) throw new AdminError('ADMIN_METHOD_NOT_ALLOWED', `${path} accepts ${matching.map((candidate) => candidate.route.method).join(', ')}`);
      const values = match.pattern.exec(path)?.slice(1) ?? [];
      const params = Object.fromEntries(match.names.map((name, index) => [name, decodeComponent(values[index] ?? '', `the ${name} in the path`)]));
      const query = parseQuery(target.search, match.route.query ?? []);
      // Only a well-formed request waits for a first-use record (a write): a malformed one is
      // answered at once, even from a client that already closed its side.
      await operators.recordFirstUse(credential);
      await match.route.handle({ request, response, operator, params, query }, options.context);
    } catch (error) {
      const refusal = adminRefusal(error);
      if (refusal) {
        if (refusal.code === 'ADMIN_UNAVAILABLE') options.context.logger.warn({ err: error, url: request.url }, 'admin request refused: the registry does not answer');
        sendAdminError(response, refusal);
        return;
      }
      options.context.logger.error({ err: error, url: request.url }, 'admin request failed');
      sendAdminError(response, new AdminError('ADMIN_INTERNAL', 'internal error'));
    }
  }
  // A request Node cannot parse never reaches dispatch: Node answers 400 (431 for oversized
  // headers) when the socket still takes it, and destroys it. A listener here replaces that, so
  // it does the same by hand; a refused TLS renegotiation (listener-guard.ts) is closed at once.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code !== 'ERR_TLS_RENEGOTIATION_DISABLED' && socket.writable && (socket as Duplex & { bytesWritten?: number }).bytesWritten === 0) {
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
    }
    socket.destroy();
  });
  return server;
}
