import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import type { Fleet } from './fleet.ts';

/** An admin API answer. */
export interface AdminResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** What the admin API is called on: a fleet, or any server of a data directory (a `fleetgate serve` process). */
export type AdminTarget = Pick<Fleet, 'layout' | 'rootPem'> & { readonly server: { readonly adminUrl: string } };

/** Calls the admin API with the data directory's operator certificate (or another credential). */
export async function admin(fleet: AdminTarget, method: string, path: string, options: { body?: unknown; cert?: string; key?: string; anonymous?: boolean } = {}): Promise<AdminResponse> {
  const cert = options.anonymous ? undefined : (options.cert ?? (await readFile(fleet.layout.operatorCert, 'utf8')));
  const key = options.anonymous ? undefined : (options.key ?? (await readFile(fleet.layout.operatorKey, 'utf8')));
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, fleet.server.adminUrl), { method, ca: fleet.rootPem, cert, key, agent: false, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}
