import { FleetgateError } from '@fleetgate/device-sdk/errors';

/**
 * The dashboard's own refusals (`fleetgate dashboard`) and their HTTP statuses. Stable; listed in
 * docs/errors.md under "Dashboard". A refusal of the admin API behind it keeps the API's code.
 */
export const DASHBOARD_ERRORS = {
  /** No token: neither `?token=` on the first visit nor the session cookie. */
  DASHBOARD_TOKEN_REQUIRED: 401,
  /** A token or cookie that is not this process's. */
  DASHBOARD_TOKEN_INVALID: 401,
  /** A state-changing request without the header the page sets (a cross-site form cannot). */
  DASHBOARD_HEADER_REQUIRED: 403,
  /** A Host header other than the dashboard's own address (DNS rebinding). */
  DASHBOARD_HOST_REFUSED: 403,
  /** No such page, asset or API path. */
  DASHBOARD_NOT_FOUND: 404,
  /** The method is not allowed on that path. */
  DASHBOARD_METHOD_NOT_ALLOWED: 405,
  /** The admin API did not answer (down, unreachable, TLS failure). */
  DASHBOARD_ADMIN_UNREACHABLE: 502,
  /** An unexpected failure of the dashboard itself (logged with its cause). */
  DASHBOARD_INTERNAL: 500,
} as const;

export type DashboardErrorCode = keyof typeof DASHBOARD_ERRORS;

/** A refused dashboard request: JSON `{ "error": { "code", "message" } }` with the code's status. */
export class DashboardError extends FleetgateError<DashboardErrorCode> {
  override readonly name = 'DashboardError';

  get status(): number {
    return DASHBOARD_ERRORS[this.code];
  }
}
