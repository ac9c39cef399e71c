import { PkiError } from '../pki/errors.ts';
import { RegistryError } from '../registry/errors.ts';
import { ConfigError } from '../config/config.ts';
import { DataDirError } from '../datadir/authorities.ts';
import { BatchError } from '../factory/bootstrap-batch.ts';
import { InitError } from '../datadir/init.ts';
import { ServiceCredentialError } from '../factory/service-credential.ts';

/** Errors whose message is meant for the operator, with a stable code. */
export function operatorError(error: unknown): { code: string; message: string } | undefined {
  if (error instanceof PkiError || error instanceof RegistryError || error instanceof DataDirError) {
    return { code: error.code, message: error.message };
  }
  if (error instanceof ConfigError || error instanceof BatchError || error instanceof InitError || error instanceof ServiceCredentialError) return { code: error.code, message: error.message };
  const errno = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (errno.code === 'EADDRINUSE' || errno.code === 'EACCES' || errno.code === 'EADDRNOTAVAIL') {
    return {
      code: 'SERVE_LISTEN_FAILED',
      message: `cannot listen on ${errno.address ?? '?'}:${errno.port ?? '?'} (${errno.code}): another process holds the port, or the address is not local; choose other --*-port or --host values`,
    };
  }
  return undefined;
}
