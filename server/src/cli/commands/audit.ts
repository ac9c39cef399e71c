import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { AuditFileChecker, type AuditFileVerification } from '../../registry/audit-chain.ts';
import { AUDIT_TYPES } from '../../registry/types.ts';
import type { AuditEntryView, AuditPageView } from '../../admin/wire.ts';
import type { AdminClient } from '../admin-client.ts';
import { integerOption, requireString, UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption, type OptionValues } from '../admin-command.ts';
import { isAuditPage, isAuditVerification } from '../api-types.ts';
import { CliError } from '../errors.ts';
import { exportSink } from '../export-sink.ts';
import { count, print, printJson, shortTime } from '../format.ts';
import { auditTable } from './device.ts';
import { formatSerial } from '../../pki/serial.ts';
import { durationMs } from '../duration.ts';

/** The admin API's largest audit page (server/src/admin/routes/audit.ts). */
const MAX_AUDIT = 100_000;
/** `fleetgate audit` without --limit: a screenful, newest first. */
const DEFAULT_LIMIT = 50;
/** `fleetgate audit --follow` without --limit: the last few entries before the new ones, like `tail -f`. */
const DEFAULT_FOLLOW_BACKLOG = 10;
/** Entries per request of `audit export` and of a `--follow` poll. */
const PAGE = 10_000;
/** How often `--follow` asks for new entries. */
const FOLLOW_INTERVAL_MS = 1_000;

/** `--since`/`--until`: an ISO 8601 time, or a duration back from now (`90s`, `15m`, `2h`, `7d`). */
export function parseSince(value: string, now = new Date(), flag = '--since'): string {
  const ago = durationMs(value);
  if (ago !== undefined) return new Date(now.getTime() - ago).toISOString();
  const time = Date.parse(value);
  if (Number.isNaN(time) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new UsageError(`${flag} takes an ISO 8601 time (2026-11-23T10:00:00Z) or a duration ago (90s, 15m, 2h, 7d), got ${JSON.stringify(value)}`);
  }
  return new Date(time).toISOString();
}

/** `--type` given once or more, each a comma list, checked against the audit types. */
export function parseTypes(value: string | boolean | string[] | undefined): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  const types = (Array.isArray(value) ? value : [value]).flatMap((item) => item.split(',')).map((item) => item.trim());
  const known: readonly string[] = AUDIT_TYPES;
  const unknown = types.filter((type) => !known.includes(type));
  if (unknown.length > 0) throw new UsageError(`unknown audit type ${unknown.map((type) => JSON.stringify(type)).join(', ')}; the types are ${AUDIT_TYPES.join(', ')}`);
  return [...new Set(types)].join(',');
}

/** The filters shared by `audit`, `audit --follow` and `audit export`, as admin API query values. */
interface AuditFilters {
  readonly device?: string;
  readonly since?: string;
  readonly until?: string;
  readonly type?: string;
  readonly actor?: string;
}

function filtersOf(values: OptionValues): AuditFilters {
  const since = stringOption(values, 'since');
  const until = stringOption(values, 'until');
  const filters = {
    device: stringOption(values, 'device'),
    since: since === undefined ? undefined : parseSince(since),
    until: until === undefined ? undefined : parseSince(until, new Date(), '--until'),
    type: parseTypes(values.type),
    actor: stringOption(values, 'actor'),
  };
  if (filters.since !== undefined && filters.until !== undefined && filters.since >= filters.until) throw new UsageError(`--since (${filters.since}) must be before --until (${filters.until})`);
  return filters;
}

/** One GET /v1/audit. */
function page(client: AdminClient, query: Readonly<Record<string, string | number | undefined>>): Promise<AuditPageView> {
  return client.json('GET', '/v1/audit', isAuditPage, { query });
}

/** One line of `--follow` (columns of fixed width: the table cannot be measured ahead). */
function followLine(entry: AuditEntryView, withDevice: boolean): string {
  const detail = [entry.code, entry.detail, entry.serial && `serial ${formatSerial(entry.serial)}`, entry.peer && `from ${entry.peer}`].filter(Boolean).join('; ') || '-';
  const cells = [String(entry.seq).padEnd(6), shortTime(entry.time).padEnd(20), entry.type.padEnd(13), ...(withDevice ? [(entry.deviceId ?? '-').padEnd(28)] : []), entry.actor.padEnd(30), detail];
  return cells.join('  ').trimEnd();
}

/**
 * `--follow`: the last entries, oldest first, then every new one as it is appended, until SIGINT
 * or SIGTERM (exit 0). Polls GET /v1/audit oldest first after a sequence cursor: the cursor is
 * where the server's read stopped (matching or not), so nothing is printed twice or skipped.
 */
async function follow(client: AdminClient, filters: AuditFilters, backlog: number, json: boolean): Promise<number> {
  const emit = (entry: AuditEntryView): void => {
    process.stdout.write(`${json ? JSON.stringify(entry) : followLine(entry, filters.device === undefined)}\n`);
  };
  // Asks for one entry at least (the API's smallest page), for the head; prints `backlog` of them.
  const first = await page(client, { ...filters, order: 'newest', limit: Math.max(1, backlog) });
  let cursor = Math.max(first.head, ...first.entries.map((entry) => entry.seq));
  let stop: (() => void) | undefined;
  let stopped = false;
  const onSignal = (): void => {
    stopped = true;
    stop?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const entry of first.entries.slice(0, backlog).reverse()) emit(entry);
    process.stderr.write(`following the audit log after entry ${cursor} (Ctrl-C to stop)\n`);
    while (!stopped) {
      const next = await page(client, { ...filters, order: 'oldest', after: cursor, limit: PAGE });
      for (const entry of next.entries) emit(entry);
      cursor = Math.max(cursor, next.cursor);
      if (next.more || stopped) continue;
      await new Promise<void>((resolvePromise) => {
        const timer = setTimeout(resolvePromise, FOLLOW_INTERVAL_MS);
        stop = () => {
          clearTimeout(timer);
          resolvePromise();
        };
      });
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `fleetgate audit` (GET /v1/audit). */
export const auditCommand: Command = adminCommand({
  path: ['audit'],
  usage: '[--since T] [--until T] [--type T,...] [--actor A] [--device ID] [--limit N] [--oldest-first] [--follow] [--json]',
  description: `Prints the append-only audit log, newest first: every issuance, renewal, resend, refusal (with
its code), revocation, disable, enable, reset and trust change, with who did it (device:<id>,
operator:<name>, trust:<name>, system). The filters combine. \`fleetgate audit verify\` checks
its hash chain; \`fleetgate audit export\` saves it for checking offline.`,
  options: {
    since: { type: 'string' },
    until: { type: 'string' },
    type: { type: 'string', multiple: true },
    actor: { type: 'string' },
    device: { type: 'string' },
    limit: { type: 'string' },
    'oldest-first': { type: 'boolean' },
    follow: { type: 'boolean', short: 'f' },
    json: { type: 'boolean' },
  },
  optionsHelp: `  --since T           only entries from T on: ISO 8601 (2026-11-23T10:00:00Z) or a duration ago (15m, 2h, 7d)
  --until T           only entries before T (same forms)
  --type T,...        only these events (repeat it or give a comma list): ${AUDIT_TYPES.join(', ')}
  --actor A           only what A did: operator:alice, device:<id>, system, or a prefix such as operator:
  --device ID         only entries about device ID
  --limit N           at most N entries (default ${DEFAULT_LIMIT}; ${DEFAULT_FOLLOW_BACKLOG} before new ones with --follow; at most ${MAX_AUDIT})
  --oldest-first      the other order: the oldest matching entries first
  -f, --follow        then print new entries as they are appended, until Ctrl-C (exit 0)
  --json              print { "entries": [...] } (with --follow: one entry per line, JSON Lines)`,
  positionals: [],
  async run({ values, connect }) {
    const filters = filtersOf(values);
    const limitGiven = values.limit !== undefined;
    if (values.follow) {
      if (filters.until !== undefined) throw new UsageError('--follow prints entries as they come: it does not take --until');
      const backlog = integerOption(values, 'limit', DEFAULT_FOLLOW_BACKLOG, 0, MAX_AUDIT);
      return follow(await connect(), filters, backlog, values.json === true);
    }
    const limit = integerOption(values, 'limit', DEFAULT_LIMIT, 1, MAX_AUDIT);
    const order = values['oldest-first'] ? 'oldest' : 'newest';
    const client = await connect();
    // Page on: a page may end early (the server examines a bounded number of entries per request).
    const entries: AuditEntryView[] = [];
    let cursor: number | undefined;
    let more = true;
    while (more && entries.length < limit) {
      const answer = await page(client, { ...filters, order, limit: limit - entries.length, ...(order === 'newest' ? { before: cursor } : { after: cursor }) });
      entries.push(...answer.entries);
      more = answer.more;
      cursor = answer.cursor;
    }
    if (more && !limitGiven) process.stderr.write(`note: showing the ${order} ${limit} entries; see more with --limit, or narrow with --since, --until, --type, --actor or --device\n`);
    if (values.json) {
      printJson({ entries });
      return 0;
    }
    if (entries.length === 0) {
      print('no audit entries');
      return 0;
    }
    print(auditTable(entries, filters.device === undefined));
    print(count(entries.length, 'entry', 'entries'));
    return 0;
  },
});

/** `fleetgate audit export --out FILE|-` (GET /v1/audit, oldest first, page by page). */
export const auditExportCommand: Command = adminCommand({
  path: ['audit', 'export'],
  usage: '--out FILE|- [--since T] [--until T] [--json]',
  description: `Saves the audit log as JSON Lines: one entry a line, oldest first, each with its hash and the
hash of the entry before it, so \`fleetgate audit verify --file FILE\` can check it later with
no server. Prints the head (the last entry's hash): keep it apart from the file, and
\`audit verify --file FILE --head HASH\` also finds a file cut short. The whole log by default;
--since/--until export the entries from the first one at or after --since up to the last one
before --until, with no gap. FILE is replaced atomically; \`--out -\` writes to stdout (the
summary then goes to stderr).`,
  options: { out: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean' } },
  optionsHelp: `  --out FILE|-        where to write the JSON Lines (- for stdout)
  --since T           start at the first entry from T on: ISO 8601 or a duration ago (15m, 2h, 7d)
  --until T           stop before the first entry from T on (same forms)
  --json              print the summary as JSON ({ "file", "entries", "first", "last", "head" })`,
  positionals: [],
  async run({ values, connect }) {
    const outFlag = requireString(values, 'out');
    const since = stringOption(values, 'since');
    const until = stringOption(values, 'until');
    const from = since === undefined ? undefined : parseSince(since);
    const to = until === undefined ? undefined : parseSince(until, new Date(), '--until');
    if (from !== undefined && to !== undefined && from >= to) throw new UsageError(`--since (${from}) must be before --until (${to})`);
    const client = await connect();
    const toStdout = outFlag === '-';
    const out = toStdout ? undefined : resolve(outFlag);
    const sink = await exportSink(out);
    let first: AuditEntryView | undefined;
    let last: AuditEntryView | undefined;
    let entries = 0;
    try {
      // Where the range starts: the first entry at or after --since, then every entry after it
      // by sequence (not by time: a clock stepped back must not leave a hole in the chain).
      let cursor = 0;
      if (from !== undefined) {
        const start = await page(client, { since: from, order: 'oldest', limit: 1 });
        cursor = start.entries[0] === undefined ? Number.POSITIVE_INFINITY : start.entries[0].seq - 1;
      }
      let done = !Number.isFinite(cursor);
      while (!done) {
        const answer = await page(client, { order: 'oldest', after: cursor, limit: PAGE });
        let text = '';
        for (const entry of answer.entries) {
          if (to !== undefined && entry.time >= to) {
            done = true;
            break;
          }
          first ??= entry;
          last = entry;
          entries++;
          text += `${JSON.stringify(entry)}\n`;
        }
        if (text) await sink.write(text);
        cursor = answer.cursor;
        if (!answer.more) done = true;
      }
      await sink.commit();
    } catch (error) {
      await sink.abandon();
      throw error;
    }
    const head = last?.hash ?? '0'.repeat(64);
    const summary = { file: out ?? '-', entries, first: first?.seq ?? 0, last: last?.seq ?? 0, head };
    const line = values.json
      ? JSON.stringify(summary, null, 2)
      : `exported ${count(entries, 'audit entry', 'audit entries')}${entries > 0 ? ` (${summary.first}..${summary.last})` : ''} to ${out ?? 'stdout'}\nhead ${head}`;
    if (toStdout) process.stderr.write(`${line}\n`);
    else print(line);
    return 0;
  },
});

/** Checks an exported file line by line, with no server. */
async function verifyFile(path: string, head: string | undefined): Promise<AuditFileVerification> {
  const checker = new AuditFileChecker(head);
  let input: NodeJS.ReadableStream & { destroy?: () => void };
  if (path === '-') input = process.stdin;
  else {
    try {
      input = (await open(path, 'r')).createReadStream();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new CliError('CLI_INPUT_INVALID', `cannot read --file ${path}${code ? ` (${code})` : ''}`, { cause: error });
    }
  }
  try {
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (checker.push(line)?.ok === false) break;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError('CLI_INPUT_INVALID', `cannot read --file ${path}${code ? ` (${code})` : ''}`, { cause: error });
  } finally {
    if (input !== process.stdin) input.destroy?.();
  }
  return checker.finish();
}

/**
 * `fleetgate audit verify` (GET /v1/audit/verify), or `audit verify --file FILE [--head HASH]`
 * offline; exit 1 with CLI_AUDIT_BROKEN when the chain is broken.
 */
export const auditVerifyCommand: Command = adminCommand({
  path: ['audit', 'verify'],
  usage: '[--file FILE|- [--head HASH]] [--json]',
  description: `Walks the audit log's hash chain on the server: every entry must follow the one before it
(sequence and previous hash) and hash to what it says, and the last one must be the head the
registry recorded. With --file, checks a file \`fleetgate audit export\` wrote instead, offline
(no server, no credentials): the same checks, and with --head the last entry's hash must be
that head, so a file cut short is found too. Exit status 0 when intact; 1 when broken, naming
the first entry that fails (altered, missing, out of order) so it can be compared with a backup.`,
  options: { file: { type: 'string' }, head: { type: 'string' }, json: { type: 'boolean' } },
  optionsHelp: `  --file FILE|-       check an exported log (JSON Lines) offline; - reads stdin
  --head HASH         with --file: the head recorded when it was exported (64 hex digits)
  --json              print the result as JSON ({ "ok", "entries", "head" } or { "ok", "entries", "brokenAt", "reason" })`,
  positionals: [],
  async run({ values, connect }) {
    const file = stringOption(values, 'file');
    const head = stringOption(values, 'head');
    if (head !== undefined && file === undefined) throw new UsageError('--head goes with --file (the server checks its own recorded head)');
    if (head !== undefined && !/^[0-9a-f]{64}$/.test(head)) throw new UsageError(`--head must be a SHA-256 hash (64 lowercase hex digits), got ${JSON.stringify(head.slice(0, 80))}`);
    if (file !== undefined) {
      const result = await verifyFile(file, head);
      if (values.json) printJson(result);
      if (result.ok) {
        if (!values.json) print(`audit export intact: ${count(result.entries, 'entry', 'entries')}${result.entries > 0 ? ` (${result.first}..${result.last})` : ''}, head ${result.head}${head ? ' (the recorded head)' : ''}`);
        return 0;
      }
      if (!values.json) print(`audit export BROKEN at entry ${result.brokenAt} (line ${result.line}): ${result.reason} (${count(result.entries, 'entry', 'entries')} before it verified)`);
      throw new CliError('CLI_AUDIT_BROKEN', `the exported audit log ${file} is broken at entry ${result.brokenAt} (line ${result.line}): ${result.reason}`);
    }
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
