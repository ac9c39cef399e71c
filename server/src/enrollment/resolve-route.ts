import { EST_PREFIX } from '@fleetgate/device-sdk/protocol';
import { EnrollmentError } from '../authority/errors.ts';
import { cacerts } from './routes/cacerts.ts';
import { crl } from './routes/crl.ts';
import { csrattrs } from './routes/csrattrs.ts';
import { simpleenroll } from './routes/simpleenroll.ts';
import { simplereenroll } from './routes/simplereenroll.ts';
import type { Route } from './routes/types.ts';

/** RFC 7030 §3.2.2 operation paths fleetgate serves, one module each. */
const ROUTES: ReadonlyMap<string, Route> = new Map([
  ['cacerts', cacerts],
  ['simpleenroll', simpleenroll],
  ['simplereenroll', simplereenroll],
  ['csrattrs', csrattrs],
]);

/**
 * RFC 7030 operations fleetgate does not offer: server-side key generation (§4.4; a device key
 * never leaves the device) and full CMC (§4.3). They are real EST operations, so they get 501 Not
 * Implemented rather than 404, and a client can tell "not here" from "never here".
 */
const NOT_OFFERED: ReadonlySet<string> = new Set(['serverkeygen', 'fullcmc']);

/**
 * Finds the route of a request path, or throws the refusal that says why there is none.
 *
 * RFC 7030 §3.2.2 lets a server host several CAs under `/.well-known/est/<label>/<operation>`.
 * fleetgate has one issuing CA, so it has no labels: a labelled path is refused with 404
 * ENROLL_LABEL_UNKNOWN, which names the unlabelled path to use (docs/enrollment.md).
 */
export function resolveRoute(method: string | undefined, url: string | undefined): Route {
  const path = (url ?? '').split('?')[0] ?? '';
  // The CRL sits beside EST on the same listener, open to everyone (RFC 5280 §5).
  if (path === '/crl') {
    if (method !== 'GET') throw new EnrollmentError('ENROLL_METHOD_NOT_ALLOWED', '/crl accepts GET only');
    return crl;
  }
  if (!path.startsWith(`${EST_PREFIX}/`)) throw new EnrollmentError('ENROLL_NOT_FOUND', `no such resource ${path}`);
  const segments = path.slice(EST_PREFIX.length + 1).split('/');
  if (segments.length > 2 || segments.some((segment) => segment.length === 0)) {
    throw new EnrollmentError('ENROLL_NOT_FOUND', `no such EST resource ${path}`);
  }
  const operation = segments.at(-1) ?? '';
  const label = segments.length === 2 ? segments[0] : undefined;
  if (NOT_OFFERED.has(operation)) {
    throw new EnrollmentError('ENROLL_NOT_IMPLEMENTED', `the EST operation ${operation} is not offered by this server (it offers cacerts, csrattrs, simpleenroll, simplereenroll)`);
  }
  const route = ROUTES.get(operation);
  if (!route) throw new EnrollmentError('ENROLL_NOT_FOUND', `no such EST operation ${path}`);
  if (label !== undefined) {
    throw new EnrollmentError('ENROLL_LABEL_UNKNOWN', `this server has no CA label "${label.slice(0, 64)}"; use ${EST_PREFIX}/${operation}`);
  }
  if (method !== route.method) throw new EnrollmentError('ENROLL_METHOD_NOT_ALLOWED', `${path} accepts ${route.method} only`);
  return route;
}
