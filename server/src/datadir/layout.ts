import { join, resolve } from 'node:path';

/** Default data directory when neither `--data` nor FLEETGATE_DATA is given. */
export const DEFAULT_DATA_DIR = './data';

/** Resolves the data directory from a flag, then FLEETGATE_DATA, then the default. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.FLEETGATE_DATA ?? DEFAULT_DATA_DIR);
}

/** Names of the CAs fleetgate keeps. */
export type AuthorityName = 'root' | 'issuing' | 'factory';

/** Where everything lives inside a data directory. A stable surface: scripts depend on it. */
export function dataLayout(dataDir: string) {
  const ca = join(dataDir, 'ca');
  return {
    root: dataDir,
    caDir: ca,
    /** The trust anchor devices pin. */
    rootCert: join(ca, 'root.crt'),
    authorityCert: (name: AuthorityName) => join(ca, `${name}.crt`),
    authorityKey: (name: AuthorityName) => join(ca, `${name}.key`),
    /** Server TLS certificate (leaf + issuing CA) and key, for every listener. */
    serverCert: join(dataDir, 'tls', 'server.crt'),
    serverKey: join(dataDir, 'tls', 'server.key'),
    /**
     * The secret every process and node derives its TLS session ticket keys from (tls/ticket-keys.ts):
     * copied to every node of a cluster, so a device resumes its TLS session on any of them.
     */
    ticketSecret: join(dataDir, 'tls', 'ticket.secret'),
    /** Operator client certificate used by the CLI against the admin API. */
    operatorCert: join(dataDir, 'operator', 'operator.crt'),
    operatorKey: join(dataDir, 'operator', 'operator.key'),
    config: join(dataDir, 'config.json'),
    registry: join(dataDir, 'registry'),
  } as const;
}

export type DataLayout = ReturnType<typeof dataLayout>;
