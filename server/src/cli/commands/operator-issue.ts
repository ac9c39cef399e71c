import { resolve } from 'node:path';
import { loadAuthorityFromDataDir, readCertificateFile } from '../../datadir/authorities.ts';
import { dataLayout, resolveDataDir } from '../../datadir/layout.ts';
import { issueOperatorCredential, MAX_OPERATOR_DAYS, OPERATOR_NAME } from '../../factory/operator-credential.ts';
import { integerOption, requireString, UsageError, type Command } from '../args.ts';

/** `fleetgate operator issue NAME`: an operator certificate, offline, like `fleetgate service issue`. */
export const operatorIssueCommand: Command = {
  path: ['operator', 'issue'],
  help: `Usage: fleetgate operator issue NAME --out DIR [--data DIR] [--valid-days D] [--json]

Issues an operator client certificate for the admin API from the device-issuing CA, offline
(like \`fleetgate service issue\`: it needs ca/issuing.key, no running server). Writes into --out:
  NAME.crt    the certificate (SAN urn:fleetgate:operator:NAME) followed by the issuing CA
  NAME.key    its private key, PKCS#8 PEM, mode 0600 (never written over an existing file)
  root.crt    the trust anchor that verifies the admin API's server certificate
Use it with any admin command: \`fleetgate device list --cert DIR/NAME.crt --key DIR/NAME.key\`.
What the operator does is audited as operator:NAME. The certificate is recorded in
<data>/batches/ for the server to import (or at its first use of the admin API): \`fleetgate
operator list\` shows it and \`fleetgate operator revoke\` revokes it.

Options:
  --out DIR           output folder
  --data DIR          data directory holding ca/issuing.key (default ./data or $FLEETGATE_DATA)
  --valid-days D      certificate lifetime in days (default 90, at most ${MAX_OPERATOR_DAYS})
  --json              print what was written as JSON
  -h, --help          this help`,
  options: {
    out: { type: 'string' },
    data: { type: 'string' },
    'valid-days': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    const [name, extra] = positionals;
    if (name === undefined) throw new UsageError('operator issue needs NAME (usage: fleetgate operator issue NAME --out DIR)');
    if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)} (usage: fleetgate operator issue NAME --out DIR)`);
    if (!OPERATOR_NAME.test(name)) throw new UsageError(`invalid operator name ${JSON.stringify(name)}: lower-case letters, digits and dashes, starting with a letter, at most 32`);
    const outDir = resolve(requireString(values, 'out'));
    const validDays = integerOption(values, 'valid-days', 90, 1, MAX_OPERATOR_DAYS);
    const dataDir = resolveDataDir(values.data as string | undefined);
    const issuing = await loadAuthorityFromDataDir(dataDir, 'issuing');
    const root = await readCertificateFile(dataLayout(dataDir).rootCert);
    const credential = await issueOperatorCredential({ issuing, root, name, outDir, validDays, dataDir });
    if (values.json) process.stdout.write(`${JSON.stringify(credential, null, 2)}\n`);
    else process.stdout.write(`operator ${name}: ${credential.cert}, ${credential.key} (expires ${credential.expiry})\n`);
    return 0;
  },
};
