/** Stable codes of registry errors. */
export type RegistryErrorCode =
  | 'REGISTRY_CONFLICT'
  | 'REGISTRY_DEVICE_BLOCKED'
  | 'REGISTRY_NOT_FOUND'
  | 'REGISTRY_INVALID_STATE'
  | 'REGISTRY_CLOSED'
  | 'REGISTRY_LOCKED'
  | 'REGISTRY_IO';

/** A registry failure with a stable code. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
