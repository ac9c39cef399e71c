import { resolve } from 'node:path';
import { loadAuthorityFromDataDir, readCertificateFile } from '../../datadir/authorities.ts';
import { dataLayout, resolveDataDir } from '../../datadir/layout.ts';
import { issueServiceCredential } from '../../factory/service-credential.ts';
import { integerOption, requireString, type Command } from '../args.ts';

export const serviceIssueCommand: Command = {
  path: ['service', 'issue'],
  help: `Usage: fleetgate service issue [--data DIR] --name NAME --out DIR [--valid-days D] [--json]

Issues a client certificate for a backend service from the device-issuing CA (offline, like
bootstrap issue). Writes NAME.crt (certificate + issuing CA), NAME.key (mode 0600) and root.crt
into --out. The broker admits the service only while config.json lists NAME under
broker.services, with the topics given there; its MQTT client id is NAME or NAME:<instance>, so
several instances can run at once. The default configuration lists "backend", which may
subscribe to devices/# and publish to devices/+/commands/# and fleet/#. The certificate is
recorded in <data>/batches/ for the server to import (or at its first connection):
\`fleetgate service list\` shows it, \`fleetgate service revoke\` revokes it.

Options:
  --data DIR          data directory holding ca/issuing.key (default ./data or $FLEETGATE_DATA)
  --name NAME         service name: lower-case letters, digits, dashes
  --out DIR           output folder
  --valid-days D      certificate lifetime in days (default 365)
  --json              print what was written as JSON
  -h, --help          this help`,
  options: {
    data: { type: 'string' },
    name: { type: 'string' },
    out: { type: 'string' },
    'valid-days': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values) {
    const dataDir = resolveDataDir(values.data as string | undefined);
    const name = requireString(values, 'name');
    const outDir = resolve(requireString(values, 'out'));
    const validDays = integerOption(values, 'valid-days', 365, 1, 3650);
    const issuing = await loadAuthorityFromDataDir(dataDir, 'issuing');
    const root = await readCertificateFile(dataLayout(dataDir).rootCert);
    const credential = await issueServiceCredential({ issuing, root, name, outDir, validDays, dataDir });
    if (values.json) process.stdout.write(`${JSON.stringify(credential, null, 2)}\n`);
    else process.stdout.write(`service ${name}: ${credential.cert}, ${credential.key} (expires ${credential.expiry})\n`);
    return 0;
  },
};
