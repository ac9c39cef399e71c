import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { mutualTlsServerOptions } from '../tls/defaults.ts';
import { AdminError } from './errors.ts';
import { sendAdminError } from './http.ts';
import { operatorOf } from './operator-identity.ts';
import { readAudit, verifyAudit } from './routes/audit.ts';
import { currentCrl } from './routes/crl.ts';
import { disableDevice, enableDevice, listDevices, resetDevice, revokeDevice, showDevice } from './routes/devices.ts';
import { deleteTrust, listTrusts, putTrust } from './routes/trusts.ts';
import type { AdminContext, AdminRoute } from './routes/types.ts';

const ROUTES: readonly AdminRoute[] = [
  listDevices,
  showDevice,
  revokeDevice,
  disableDevice,
  enableDevice,
  resetDevice,
  listTrusts,
  putTrust,
  deleteTrust,
  readAudit,
  verifyAudit,
  currentCrl,
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

export interface AdminServerOptions {
  readonly context: AdminContext;
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

  async function dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const operator = operatorOf(request.socket as TLSSocket, options.issuing);
      const url = new URL(request.url ?? '/', 'https://admin');
      const path = url.pathname.replace(/\/+$/, '') || '/';
      const matching = COMPILED.filter((candidate) => candidate.pattern.test(path));
      if (matching.length === 0) throw new AdminError('ADMIN_NOT_FOUND', `no such resource ${path}`);
      const match = matching.find((candidate) => candidate.route.method === request.method);
      if (!match) throw new AdminError('ADMIN_METHOD_NOT_ALLOWED', `${path} accepts ${matching.map((candidate) => candidate.route.method).join(', ')}`);
      const values = match.pattern.exec(path)?.slice(1) ?? [];
      const params = Object.fromEntries(match.names.map((name, index) => [name, decodeURIComponent(values[index] ?? '')]));
      await match.route.handle({ request, response, operator, params, query: url.searchParams }, options.context);
    } catch (error) {
      if (error instanceof AdminError) {
        sendAdminError(response, error);
        return;
      }
      options.context.logger.error({ err: error, url: request.url }, 'admin request failed');
      sendAdminError(response, new AdminError('ADMIN_INTERNAL', 'internal error'));
    }
  }
  server.on('clientError', (_error, socket) => socket.destroy());
  return server;
}
