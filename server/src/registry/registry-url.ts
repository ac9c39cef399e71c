/*
 * Registry URLs, apart from any engine: checked and shown by the CLI, the config schema and both
 * registries without loading LevelDB or the PostgreSQL driver.
 */

/** The environment variable that names a PostgreSQL registry (between `--registry` and config.json). */
export const REGISTRY_URL_ENV = 'FLEETGATE_REGISTRY_URL';

/** What a PostgreSQL registry URL starts with (the config schema's pattern too). */
export const POSTGRES_URL = /^postgres(ql)?:\/\//;

/** Whether `url` names a PostgreSQL database (the only registry server fleetgate speaks to). */
export function isPostgresUrl(url: string): boolean {
  return POSTGRES_URL.test(url);
}

/** A URL fit for logs and output: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/** A URL fit for a file: the password taken out (it belongs in PGPASSWORD or ~/.pgpass). */
export function withoutPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = '';
  return parsed.toString();
}
