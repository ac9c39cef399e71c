import type { BatchImportView, CredentialKindView, CredentialList, CredentialView } from '../../admin/wire.ts';
import type { Command } from '../args.ts';
import { adminCommand } from '../admin-command.ts';
import { count, print, printJson, shortTime, table } from '../format.ts';
import { formatSerial } from '../../pki/serial.ts';

/*
 * `fleetgate operator list|revoke`, `fleetgate service list|revoke` and `fleetgate bootstrap
 * import`, over the admin API. Type-only imports from the server: an admin command loads no
 * server module (cli/main.ts).
 */

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function isCredentialList(value: unknown): value is CredentialList {
  return (
    isRecord(value) &&
    Array.isArray(value.credentials) &&
    value.credentials.every((entry) => isRecord(entry) && typeof entry.name === 'string' && typeof entry.serial === 'string' && typeof entry.state === 'string')
  );
}

function isImportReport(value: unknown): value is BatchImportView {
  return isRecord(value) && Array.isArray(value.batches) && Array.isArray(value.credentials) && Array.isArray(value.invalid);
}

/** `valid`, `expired` or `revoked` as an operator reads it. */
function stateText(record: CredentialView, now = Date.now()): string {
  if (record.state === 'revoked') return `revoked ${shortTime(record.revokedAt)}${record.revokedBy ? ` by ${record.revokedBy}` : ''}`;
  return Date.parse(record.expiresAt) <= now ? 'expired' : 'valid';
}

function listCommand(kind: CredentialKindView): Command {
  return adminCommand({
    path: [kind, 'list'],
    usage: '[--json]',
    description: `Lists the ${kind} certificates the registry knows: name, serial, issued, expires, state.
A certificate is on record once the server imported the record \`fleetgate ${kind} issue\` left in
<data>/batches/ (at start, or \`fleetgate bootstrap import\`), or after its first use${kind === 'operator' ? ' of the admin API' : ' on the broker'}.`,
    options: { json: { type: 'boolean' } },
    optionsHelp: `  --json              print the admin API's JSON ({ "credentials": [...] })`,
    positionals: [],
    async run({ values, connect }) {
      const answer = await (await connect()).json('GET', `/v1/${kind}s`, isCredentialList);
      if (values.json) {
        printJson(answer);
        return 0;
      }
      if (answer.credentials.length === 0) {
        print(`no ${kind} certificates on record`);
        return 0;
      }
      print(
        table(
          ['NAME', 'SERIAL', 'ISSUED', 'EXPIRES', 'STATE', 'RECORDED'],
          answer.credentials.map((record) => [record.name, formatSerial(record.serial), shortTime(record.issuedAt), shortTime(record.expiresAt), stateText(record), record.recordedVia]),
        ),
      );
      print(count(answer.credentials.length, `${kind} certificate`));
      return 0;
    },
  });
}

function revokeCommand(kind: CredentialKindView): Command {
  const effect =
    kind === 'operator'
      ? 'The admin API refuses it from the next request on (401 ADMIN_OPERATOR_REVOKED), also on a\nconnection that is already open. Revoking the last valid operator certificate on record is\nrefused (ADMIN_LAST_OPERATOR) unless --force: issue another one first (fleetgate operator issue).'
      : 'The broker closes its live sessions (every instance) at once and refuses it from then on\n(CONNACK 5, BROKER_CERT_REVOKED).';
  return adminCommand({
    path: [kind, 'revoke'],
    usage: `SERIAL|NAME${kind === 'operator' ? ' [--force]' : ''} [--json]`,
    description: `Revokes the ${kind} certificate with this serial (hex, as \`fleetgate ${kind} list\` shows it), or
every valid ${kind} certificate with this name. Final. ${effect}`,
    options: kind === 'operator' ? { force: { type: 'boolean' }, json: { type: 'boolean' } } : { json: { type: 'boolean' } },
    optionsHelp:
      kind === 'operator'
        ? `  --force             revoke even the last valid operator certificate on record
  --json              print the admin API's JSON ({ "credentials": [...] })`
        : `  --json              print the admin API's JSON ({ "credentials": [...] })`,
    positionals: ['SERIAL|NAME'],
    async run({ values, args, connect }) {
      const [ref = ''] = args;
      const body = { ref, ...(values.force === true ? { force: true } : {}) };
      const answer = await (await connect()).json('POST', `/v1/${kind}s/revoke`, isCredentialList, { body });
      if (values.json) {
        printJson(answer);
        return 0;
      }
      for (const record of answer.credentials) print(`${kind} ${record.name} serial ${formatSerial(record.serial)}: ${stateText(record)}`);
      return 0;
    },
  });
}

export const operatorListCommand = listCommand('operator');
export const operatorRevokeCommand = revokeCommand('operator');
export const serviceListCommand = listCommand('service');
export const serviceRevokeCommand = revokeCommand('service');

/** `fleetgate bootstrap import` (POST /v1/batches/import). */
export const bootstrapImportCommand: Command = adminCommand({
  path: ['bootstrap', 'import'],
  usage: '[--json]',
  description: `Tells the running server to import the record files in its <data>/batches/ now (it also does at
start): batches of \`fleetgate bootstrap issue\` become provisioned devices (\`fleetgate device list
--state provisioned\`), certificates of \`operator issue\` and \`service issue\` are recorded.
Importing again changes nothing. Invalid files are reported (BATCH_FILE_INVALID) and skipped.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: `  --json              print the admin API's JSON`,
  positionals: [],
  async run({ values, connect }) {
    const report = await (await connect()).json('POST', '/v1/batches/import', isImportReport, { body: {} });
    if (values.json) {
      printJson(report);
      return 0;
    }
    for (const batch of report.batches) print(`batch ${batch.batch}: ${count(batch.added, 'id')} provisioned, ${batch.existing} already known`);
    const added = report.credentials.filter((credential) => credential.added);
    for (const credential of added) print(`${credential.kind} ${credential.name} serial ${formatSerial(credential.serial)}: recorded`);
    for (const skipped of report.invalid) process.stderr.write(`fleetgate: ${skipped.code}: ${skipped.message}\n`);
    print(`${count(report.batches.length, 'batch', 'batches')}, ${count(added.length, 'new certificate')}, ${count(report.invalid.length, 'invalid file')}`);
    return report.invalid.length > 0 ? 1 : 0;
  },
});
