import { FleetgateError } from '@fleetgate/device-sdk/errors';

/** Stable codes of registry errors. Callers translate them (docs/errors.md, "Registry"); no metadata here. */
export const REGISTRY_ERRORS = {
  REGISTRY_CONFLICT: {},
  REGISTRY_DEVICE_BLOCKED: {},
  REGISTRY_NOT_FOUND: {},
  REGISTRY_INVALID_STATE: {},
  REGISTRY_CLOSED: {},
  REGISTRY_LOCKED: {},
  REGISTRY_IO: {},
  /** The database server does not answer (PostgreSQL down or unreachable): retry later, nothing was written. */
  REGISTRY_UNAVAILABLE: {},
  /** Revoking would leave no valid operator credential (docs/operator.md). */
  REGISTRY_LAST_CREDENTIAL: {},
  /** `registry import` into a registry that already holds devices or audit entries. */
  REGISTRY_NOT_EMPTY: {},
  /** A registry export file is cut short, altered or not an export (`registry import`). */
  REGISTRY_EXPORT_INVALID: {},
} as const;

/** A stable registry error code. */
export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

/** A registry failure with a stable code. */
export class RegistryError extends FleetgateError<RegistryErrorCode> {
  override readonly name = 'RegistryError';
}
