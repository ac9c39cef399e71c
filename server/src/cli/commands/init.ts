import { initDataDir } from '../../datadir/init.ts';
import { PASSPHRASE_ENV } from '../../datadir/authorities.ts';
import { resolveDataDir } from '../../datadir/layout.ts';
import type { Command } from '../args.ts';

export const initCommand: Command = {
  path: ['init'],
  help: `Usage: fleetgate init [--data DIR] [--hostname NAME ...] [--json]

Creates in DIR (default ./data, or $FLEETGATE_DATA):
  ca/root.crt, ca/root.key          root CA (P-256); devices pin root.crt
  ca/issuing.crt, ca/issuing.key    device-issuing CA (operational certificates)
  ca/factory.crt, ca/factory.key    factory CA (bootstrap certificates)
  tls/server.crt, tls/server.key    certificate of every listener (localhost, 127.0.0.1, ::1, --hostname)
  operator/operator.crt, .key       operator client certificate for the admin API
  config.json                       server configuration with every default written out

Running it again never overwrites a key; it reports what already exists, re-makes a missing
certificate from its key, and re-issues the server certificate when new --hostname values are given.
Keys are PKCS#8 PEM with mode 0600. Set ${PASSPHRASE_ENV} to encrypt the CA keys at rest.

Options:
  --data DIR          data directory
  --hostname NAME     extra DNS name or IP address for the server certificate (repeatable)
  --json              print the report as JSON
  -h, --help          this help`,
  options: {
    data: { type: 'string' },
    hostname: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  },
  async run(values) {
    const dataDir = resolveDataDir(values.data as string | undefined);
    const report = await initDataDir({
      dataDir,
      hostnames: (values.hostname as string[] | undefined) ?? [],
      passphrase: process.env[PASSPHRASE_ENV] || undefined,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    for (const path of report.created) process.stdout.write(`created  ${path}\n`);
    for (const path of report.updated) process.stdout.write(`updated  ${path}\n`);
    for (const path of report.existing) process.stdout.write(`exists   ${path} (kept)\n`);
    process.stdout.write(`\nfleetgate data directory ready: ${dataDir}\nDevices pin ${dataDir}/ca/root.crt. Next: fleetgate serve --data ${dataDir}\n`);
    return 0;
  },
};
