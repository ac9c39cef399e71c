import { integerOption, UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption } from '../admin-command.ts';
import { isAuditPage, isAuditVerification } from '../api-types.ts';
import { CliError } from '../errors.ts';
import { count, print, printJson } from '../format.ts';
import { auditTable } from './device.ts';

/** The admin API's largest audit read (server/src/admin/routes/audit.ts). */
const MAX_AUDIT = 100_000;

const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: an ISO 8601 time, or a duration back from now (`90s`, `15m`, `2h`, `7d`). */
export function parseSince(value: string, now = new Date()): string {
  const relative = /^(\d+)([smhd])$/.exec(value);
  if (relative) return new Date(now.getTime() - Number(relative[1]) * (UNITS[relative[2] ?? 's'] ?? 1_000)).toISOString();
  const time = Date.parse(value);
  if (Number.isNaN(time) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new UsageError(`--since takes an ISO 8601 time (2026-11-23T10:00:00Z) or a duration ago (90s, 15m, 2h, 7d), got ${JSON.stringify(value)}`);
  }
  return new Date(time).toISOString();
}

/** `fleetgate audit` (GET /v1/audit). */
export const auditCommand: Command = adminCommand({
  path: ['audit'],
  usage: '[--device ID] [--since T] [--limit N] [--json]',
  description: `Prints the append-only audit log, oldest first: every issuance, renewal, resend, refusal (with
its code), revocation, disable, enable, reset and trust change, with who did it (device:<id>,
operator:<name>, system). \`fleetgate audit verify\` checks its hash chain.`,
  options: { device: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  optionsHelp: `  --device ID         only entries about device ID
  --since T           only entries from T on: ISO 8601 (2026-11-23T10:00:00Z) or a duration ago (15m, 2h, 7d)
  --limit N           at most N entries, the oldest first (default 10000, at most ${MAX_AUDIT})
  --json              print the admin API's JSON ({ "entries": [...] })`,
  positionals: [],
  async run({ values, connect }) {
    const device = stringOption(values, 'device');
    const sinceFlag = stringOption(values, 'since');
    const since = sinceFlag === undefined ? undefined : parseSince(sinceFlag);
    const limit = integerOption(values, 'limit', 10_000, 1, MAX_AUDIT);
    const { entries } = await (await connect()).json('GET', '/v1/audit', isAuditPage, { query: { device, since, limit } });
    if (entries.length === limit) process.stderr.write(`note: showing the first ${limit} entries; narrow with --since or --device, or raise --limit\n`);
    if (values.json) {
      printJson({ entries });
      return 0;
    }
    if (entries.length === 0) {
      print('no audit entries');
      return 0;
    }
    print(auditTable(entries, device === undefined));
    print(count(entries.length, 'entry', 'entries'));
    return 0;
  },
});

/** `fleetgate audit verify` (GET /v1/audit/verify); exit 1 with CLI_AUDIT_BROKEN when the chain is broken. */
export const auditVerifyCommand: Command = adminCommand({
  path: ['audit', 'verify'],
  usage: '[--json]',
  description: `Walks the audit log's hash chain on the server: every entry must follow the one before it
(sequence and previous hash) and hash to what it says, and the last one must be the head the
registry recorded. Exit status 0 when intact; 1 when broken, naming the first entry that fails
(altered, missing, out of order) so it can be compared with a backup.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON ({ "ok", "entries", "head" } or { "ok", "entries", "brokenAt", "reason" })',
  positionals: [],
  async run({ values, connect }) {
    const result = await (await connect()).json('GET', '/v1/audit/verify', isAuditVerification);
    if (values.json) printJson(result);
    if (result.ok) {
      if (!values.json) print(`audit log intact: ${count(result.entries, 'entry', 'entries')}, head ${result.head}`);
      return 0;
    }
    if (!values.json) print(`audit log BROKEN at entry ${result.brokenAt}: ${result.reason} (${count(result.entries, 'entry', 'entries')} before it verified)`);
    throw new CliError('CLI_AUDIT_BROKEN', `the audit log's hash chain is broken at entry ${result.brokenAt}: ${result.reason}`);
  },
});
