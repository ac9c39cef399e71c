import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { DashboardError } from './errors.ts';

/**
 * The session cookie set on the first visit with the token, named after the port: cookies are not
 * kept apart by port, and two dashboards on one machine (two fleets) must not replace each other's.
 */
export const sessionCookieName = (port: number): string => `fleetgate_dashboard_${port}`;

/** The header the page sets on every state-changing request; a cross-site form or image cannot. */
export const ACTION_HEADER = 'x-fleetgate-dashboard';

/** Methods that change nothing (RFC 9110 §9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The cookies of a request (RFC 6265 §5.4), by name; the first of a repeated name wins. */
function cookies(request: IncomingMessage): Map<string, string> {
  const found = new Map<string, string>();
  for (const pair of (request.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    const name = pair.slice(0, at).trim();
    if (!found.has(name)) found.set(name, pair.slice(at + 1).trim());
  }
  return found;
}

/**
 * Who may use the dashboard: whoever holds the random token printed at start (256 bits, made
 * again by every run), from the URL on the first visit, then from an HttpOnly, SameSite=Strict
 * cookie. Every request needs it, assets included. A request must also name the dashboard's own
 * address in Host (a page on another site that resolves its name to 127.0.0.1 cannot read the
 * answers), and a state change must carry {@link ACTION_HEADER}.
 */
export class DashboardAccess {
  readonly token: string;
  private readonly tokenDigest: Buffer;
  private hosts: ReadonlySet<string> = new Set();
  private cookieName = sessionCookieName(0);

  constructor(token: string = randomBytes(32).toString('base64url')) {
    this.token = token;
    this.tokenDigest = digest(token);
  }

  /** The addresses the dashboard answers to, once it listens. */
  listeningOn(port: number): void {
    this.hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
    this.cookieName = sessionCookieName(port);
  }

  /** Whether `candidate` is the token (compared in constant time). */
  matches(candidate: string | undefined): boolean {
    return candidate !== undefined && timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  /** The token a request carries in `?token=` (the first visit). */
  urlToken(url: URL): string | undefined {
    return url.searchParams.get('token') ?? undefined;
  }

  /** The Set-Cookie value that keeps the session. */
  sessionCookie(): string {
    return `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** Throws the refusal a request earns, or returns (it may go on). */
  check(request: IncomingMessage, url: URL): void {
    if (!this.hosts.has(String(request.headers.host ?? '').toLowerCase())) throw new DashboardError('DASHBOARD_HOST_REFUSED', 'the dashboard answers on its own address only (http://127.0.0.1:PORT)');
    const presented = this.urlToken(url) ?? cookies(request).get(this.cookieName);
    if (presented === undefined || presented === '') throw new DashboardError('DASHBOARD_TOKEN_REQUIRED', 'open the URL `fleetgate dashboard` printed (it carries the token)');
    if (!this.matches(presented)) throw new DashboardError('DASHBOARD_TOKEN_INVALID', 'the token is not this dashboard\'s: open the URL the running `fleetgate dashboard` printed');
    if (!SAFE_METHODS.has(request.method ?? 'GET') && request.headers[ACTION_HEADER] !== '1') {
      throw new DashboardError('DASHBOARD_HEADER_REQUIRED', `a state change needs the ${ACTION_HEADER} header the dashboard page sets`);
    }
  }
}
