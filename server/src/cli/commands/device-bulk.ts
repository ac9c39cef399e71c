import { createInterface } from 'node:readline';
import { REVOCATION_REASONS } from '../../registry/types.ts';
import type { BulkAnswer, BulkResult, DeviceView, RevocationReasonView } from '../../admin/wire.ts';
import { UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption, type AdminCommandContext } from '../admin-command.ts';
import { readInputFile } from '../admin-client.ts';
import { parseAllowList } from '../allowlist.ts';
import { isBulkAnswer, isDeviceAnswer } from '../api-types.ts';
import { CliError, writeFailure } from '../errors.ts';
import { count, print, printJson } from '../format.ts';

/*
 * `fleetgate device revoke|disable|enable ID... [--from FILE|-]`: one device goes through
 * POST /v1/devices/:id/<action>, several through POST /v1/devices/<action>, which checks every
 * device and then writes every change in one registry batch, or none (all or nothing) unless
 * --continue-on-error.
 */

/** The admin API's largest bulk action (MAX_BULK in server/src/admin/routes/devices.ts). */
const MAX_BULK = 10_000;

/**
 * `key-compromise`, `KeyCompromise`, `key compromise` → `keyCompromise`. Anything else (a typo
 * such as keyCompromize, or free text) is a usage error listing the RFC 5280 §5.3.1 names: the
 * reason goes into the CRL as a code, and a wrong one would silently become "unspecified".
 */
export function canonicalRevocationReason(reason: string): RevocationReasonView {
  const squash = (text: string): string => text.toLowerCase().replace(/[\s_-]+/g, '');
  const found = REVOCATION_REASONS.find((name) => squash(name) === squash(reason));
  if (!found) throw new UsageError(`--reason ${JSON.stringify(reason)} is not an RFC 5280 revocation reason; use one of ${REVOCATION_REASONS.join(', ')} (free text goes in --note)`);
  return found;
}

/** What a bulk-capable device command says. */
export interface BulkCommandSpec {
  readonly action: 'revoke' | 'disable' | 'enable';
  readonly description: string;
  /** Help lines of --reason (and --note, --yes for revoke); absent: the action takes no reason. */
  readonly reasonHelp?: string;
  /** The line for a device the action changed. */
  done(device: DeviceView, reason: string | undefined): string;
  /** The line for a device already in the target state. */
  already(device: DeviceView): string;
}

const PAST: Record<BulkCommandSpec['action'], string> = { revoke: 'revoked', disable: 'disabled', enable: 'enabled' };

/** Reads the ids of `--from`: a file, or stdin for `-`; a manifest (JSON or CSV), a JSON list, or one id per line. */
async function idsFrom(source: string): Promise<string[]> {
  const label = source === '-' ? '--from - (stdin)' : `--from ${source}`;
  let text: string;
  if (source === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = (await readInputFile(source, '--from')).toString('utf8');
  }
  return parseAllowList(text, label).ids;
}

/** Asks on the terminal; true only for y or yes. */
async function confirm(question: string): Promise<boolean> {
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => {
      terminal.question(question, resolve);
      terminal.once('close', () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    terminal.close();
  }
}

/** `2 revoked, 1 already revoked, 1 refused`. */
function summaryText(answer: BulkAnswer, action: BulkCommandSpec['action']): string {
  const { summary } = answer;
  const parts = [
    `${summary.changed} ${PAST[action]}`,
    summary.unchanged > 0 ? `${summary.unchanged} already ${PAST[action]}` : undefined,
    summary.refused > 0 ? `${summary.refused} refused` : undefined,
    summary.skipped > 0 ? `${summary.skipped} not changed because of the refusals` : undefined,
  ];
  return `${count(answer.results.length, 'device')}: ${parts.filter(Boolean).join(', ')}`;
}

function resultLine(spec: BulkCommandSpec, result: BulkResult, reason: string | undefined): string {
  switch (result.status) {
    case 'changed':
      return spec.done(result.device, reason);
    case 'unchanged':
      return spec.already(result.device);
    case 'skipped':
      return `device ${result.id} not ${PAST[spec.action]}: another device was refused (all or nothing)`;
    case 'refused':
      return `device ${result.id} refused: ${result.code}: ${result.message}`;
  }
}

/** A device command that takes one id or many. */
export function bulkCommand(spec: BulkCommandSpec): Command {
  const revoke = spec.action === 'revoke';
  return adminCommand({
    path: ['device', spec.action],
    usage: `ID... [--from FILE|-]${spec.reasonHelp ? ' [--reason R]' : ''}${revoke ? ' [--note TEXT] [--yes]' : ''} [--continue-on-error] [--json]`,
    description: spec.description,
    options: {
      from: { type: 'string' },
      'continue-on-error': { type: 'boolean' },
      json: { type: 'boolean' },
      ...(spec.reasonHelp ? { reason: { type: 'string' } } : {}),
      ...(revoke ? { note: { type: 'string' }, yes: { type: 'boolean', short: 'y' } } : {}),
    },
    complete: revoke ? { values: { reason: REVOCATION_REASONS } } : undefined,
    optionsHelp: `  --from FILE         more ids from FILE, or - for stdin: a manifest.json or manifest.csv of
                      \`fleetgate bootstrap issue\`, a JSON list, or one id per line (# comments)
  --continue-on-error change the devices that can be changed and report the others (exit 1);
                      without it, one unknown or refused device means nothing is changed
${spec.reasonHelp ? `${spec.reasonHelp}\n` : ''}  --json              print the admin API's JSON: { "device", "changed" } for one id,
                      { "results", "summary" } for several; errors as JSON on stderr`,
    positionals: [],
    rest: 'ID',
    async run({ values, args, connect }: AdminCommandContext) {
      const json = values.json === true;
      const given = stringOption(values, 'reason');
      if (given !== undefined && given.trim() === '') throw new UsageError('--reason must not be empty');
      let reason: string | undefined = given?.trim();
      if (revoke && reason !== undefined) reason = canonicalRevocationReason(reason);
      const note = stringOption(values, 'note')?.trim() || undefined;
      const from = stringOption(values, 'from');
      const ids = [...new Set([...args, ...(from === undefined ? [] : await idsFrom(from))])];
      if (ids.length === 0) {
        throw new UsageError(`device ${spec.action} needs ID... or --from FILE|- (usage: fleetgate device ${spec.action} ID... [--from FILE|-])`);
      }
      if (ids.length > MAX_BULK) throw new UsageError(`${ids.length} devices: one call takes at most ${MAX_BULK}; split the list`);
      const body = { ...(reason !== undefined ? { reason } : {}), ...(note !== undefined ? { note } : {}) };
      // A revocation cannot be undone: on a terminal, ask first (not when stdin is the id list).
      if (revoke && values.yes !== true && from !== '-' && process.stdin.isTTY === true && process.stderr.isTTY === true) {
        const shown = ids.length === 1 ? `device ${ids[0]}` : `${ids.length} devices (${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', ...' : ''})`;
        if (!(await confirm(`Revoke ${shown}? This is final: its certificates go on the CRL. [y/N] `))) {
          throw new CliError('CLI_ABORTED', `nothing revoked (answer y to revoke, or pass --yes)`);
        }
      }
      const client = await connect();
      if (ids.length === 1 && values['continue-on-error'] !== true) {
        const [id = ''] = ids;
        const answer = await client.json('POST', `/v1/devices/${encodeURIComponent(id)}/${spec.action}`, isDeviceAnswer, { body });
        if (json) printJson(answer);
        else print(answer.changed === false ? spec.already(answer.device) : spec.done(answer.device, [reason, note].filter(Boolean).join(': ') || undefined));
        return 0;
      }
      const continueOnError = values['continue-on-error'] === true;
      const raw = await client.send('POST', `/v1/devices/${spec.action}`, { body: { ids, ...body, continueOnError } });
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      const error = typeof parsed === 'object' && parsed !== null ? (parsed as { error?: unknown }).error : undefined;
      if (raw.status === 409 && isBulkAnswer(error)) {
        // All or nothing: one refusal, nothing changed.
        const refusal = error as BulkAnswer & { code?: string; message?: string };
        const message = `${refusal.message ?? 'refused'}`;
        if (json) {
          writeFailure('ADMIN_BULK_REFUSED', message, { json, extra: { results: refusal.results, summary: refusal.summary } });
        } else {
          writeFailure('ADMIN_BULK_REFUSED', message);
          for (const result of refusal.results.filter((entry) => entry.status === 'refused')) process.stderr.write(`  ${resultLine(spec, result, reason)}\n`);
        }
        return 1;
      }
      const answer = client.interpret(raw, isBulkAnswer);
      if (json) printJson(answer);
      else {
        for (const result of answer.results) print(resultLine(spec, result, [reason, note].filter(Boolean).join(': ') || undefined));
        print(summaryText(answer, spec.action));
      }
      if (answer.summary.refused > 0) {
        writeFailure('CLI_PARTIAL', `${count(answer.summary.refused, 'device')} of ${answer.results.length} refused; the others were processed (--continue-on-error)`, { json });
        return 1;
      }
      return 0;
    },
  });
}
