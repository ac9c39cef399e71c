import { REVOCATION_REASONS } from '../../registry/types.ts';
import type { DeviceDetail, DeviceStateView, DeviceView, PresenceSummary } from '../../admin/wire.ts';
import { integerOption, UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption, type AdminCommandContext } from '../admin-command.ts';
import { isDeviceAnswer, isDeviceDetail, isDevicePage } from '../api-types.ts';
import { bulkCommand } from './device-bulk.ts';
import { CliError } from '../errors.ts';
import { formatSerial } from '../../pki/serial.ts';
import { count, print, printJson, shortTime, table } from '../format.ts';
import { durationMs } from '../duration.ts';

const STATES: readonly DeviceStateView[] = ['provisioned', 'enrolled', 'disabled', 'revoked'];
/** The admin API's largest page (MAX_LIST in server/src/admin/routes/devices.ts). */
const MAX_PAGE = 10_000;

export { canonicalRevocationReason } from './device-bulk.ts';

/** `7d`, `12h`, `30m`, `90s` in milliseconds (for `--expiring`). */
function parseDuration(text: string, flag: string): number {
  const ms = /^[1-9]\d{0,5}[smhd]$/.test(text) ? durationMs(text) : undefined;
  if (ms === undefined) throw new UsageError(`${flag} takes a duration such as 7d, 12h or 30m (got ${JSON.stringify(text)})`);
  return ms;
}

/** The PRESENCE column: online now, when last seen, or never. */
function presenceText(presence: PresenceSummary | null | undefined): string {
  if (!presence) return 'never seen';
  return presence.connected ? 'online' : `seen ${shortTime(presence.lastSeen)}`;
}

const devicePath = (id: string, action = ''): string => `/v1/devices/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;

function stateText(device: DeviceView): string {
  return device.stateReason ? `${device.state} (${device.stateReason})` : device.state;
}

/** `fleetgate device list`: every device, page after page (GET /v1/devices). */
export const deviceListCommand: Command = adminCommand({
  path: ['device', 'list'],
  usage: '[--state S] [--model M] [--expiring DURATION] [--json]',
  description: `Lists every device the registry knows, one page of the admin API after the other until
the last, sorted by id: model, state, expiry of the current operational certificate, when the
record last changed, and its presence on the MQTT broker (online, or when it was last seen; the
broker writes presence every few seconds). \`fleetgate device show ID\` gives one device in full.`,
  options: { state: { type: 'string' }, model: { type: 'string' }, expiring: { type: 'string' }, json: { type: 'boolean' }, 'page-size': { type: 'string' } },
  complete: { values: { state: STATES } },
  optionsHelp: `  --state S           only devices in state S: ${STATES.join(', ')}
  --model M           only devices of model M
  --expiring D        only devices whose certificate expires within D (7d, 12h, 30m), expired
                      ones included
  --json              print the devices as JSON: { "devices": [...] } (every page joined; each
                      device with "presence": { connected, lastSeen } or null)
  --page-size N       devices per API request (default 1000, at most ${MAX_PAGE})`,
  positionals: [],
  async run({ values, connect }) {
    const state = stringOption(values, 'state');
    if (state !== undefined && !STATES.includes(state as DeviceStateView)) throw new UsageError(`--state must be one of ${STATES.join(', ')} (got ${state})`);
    const model = stringOption(values, 'model');
    const pageSize = integerOption(values, 'page-size', 1000, 1, MAX_PAGE);
    const expiring = stringOption(values, 'expiring');
    const expiresBefore = expiring === undefined ? undefined : new Date(Date.now() + parseDuration(expiring, '--expiring')).toISOString();
    const client = await connect();
    const devices: (DeviceView & { presence: PresenceSummary | null })[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await client.json('GET', '/v1/devices', isDevicePage, { query: { state, model, expiresBefore, after, limit: pageSize } });
      devices.push(...page.devices.map((device) => ({ ...device, presence: page.presence?.[device.id] ?? null })));
      if (page.next === undefined || page.devices.length === 0) break;
      if (page.next === after) throw new CliError('CLI_BAD_RESPONSE', `the admin API at ${client.where} repeated the page after ${after}`);
      after = page.next;
    }
    if (values.json) {
      printJson({ devices });
      return 0;
    }
    const filter = [state && `state ${state}`, model && `model ${model}`, expiring && `certificate expiring within ${expiring}`].filter(Boolean).join(', ');
    if (devices.length === 0) {
      print(`no devices${filter ? ` (${filter})` : ''}`);
      return 0;
    }
    print(
      table(
        ['ID', 'MODEL', 'STATE', 'CERT EXPIRES', 'UPDATED', 'PRESENCE'],
        devices.map((device) => [device.id, device.model, stateText(device), shortTime(device.certNotAfter), shortTime(device.updatedAt), presenceText(device.presence)]),
      ),
    );
    print(`${count(devices.length, 'device')}${filter ? ` (${filter})` : ''}`);
    return 0;
  },
});

function printDetail(detail: DeviceDetail): void {
  const { device, presence } = detail;
  const connected = detail.connected
    ? `yes, since ${shortTime(presence?.connectedAt)}${presence?.peer ? ` from ${presence.peer}` : ''}${presence?.node ? ` on node ${presence.node}` : ''}`
    : presence
      ? `no, since ${shortTime(presence.disconnectedAt)}${presence.node ? ` (last on node ${presence.node})` : ''}`
      : 'no (never connected)';
  print(
    table(
      ['device', device.id],
      [
        ['model', device.model],
        ['state', stateText(device)],
        ['certificate', `serial ${device.certSerial ? formatSerial(device.certSerial) : '-'}, expires ${shortTime(device.certNotAfter)}`],
        ['connected', connected],
        ['last seen', presence ? `${shortTime(presence.lastSeen)}` : 'never'],
        ['bootstrap', `${device.bootstrap.trust}, serial ${formatSerial(device.bootstrap.serial)}`],
        ['enrolled', `${shortTime(device.enrolledAt ?? device.createdAt)} (${count(device.enrollments, 'enrollment')}, ${count(device.renewals, 'renewal')})`],
        ['reset pending', device.resetPending ? 'yes: one more bootstrap enrollment is allowed' : 'no'],
      ],
    ),
  );
  print('\nCertificates (newest first):');
  print(
    indent(
      table(
        ['SERIAL', 'STATUS', 'ISSUED', 'EXPIRES', 'REVOKED'],
        detail.certificates.map((certificate) => [
          formatSerial(certificate.serial),
          certificate.status,
          shortTime(certificate.issuedAt),
          shortTime(certificate.notAfter),
          certificate.revokedAt ? `${shortTime(certificate.revokedAt)} ${certificate.revocationReason ?? ''}`.trim() : '-',
        ]),
      ),
    ),
  );
  print('\nHistory:');
  print(indent(auditTable(detail.history)));
  if (detail.brokerEvents !== undefined) {
    print('\nBroker events (newest first; refused connections and dropped sessions, not audited):');
    print(indent(detail.brokerEvents.length === 0 ? 'none' : brokerEventTable(detail.brokerEvents)));
  }
}

/** Broker history entries as a table: one line per entry, a count and a span when summarised. */
function brokerEventTable(events: NonNullable<DeviceDetail['brokerEvents']>): string {
  return table(
    ['TIME', 'EVENT', 'CODE', 'COUNT', 'DETAIL'],
    events.map((event) => [
      shortTime(event.first),
      event.kind,
      event.code,
      event.count > 1 ? `x${event.count} until ${shortTime(event.last)}` : '1',
      [event.detail, event.peer && `from ${event.peer}`].filter(Boolean).join('; ') || '-',
    ]),
  );
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/** Audit entries as a table (shared with `fleetgate audit`). */
export function auditTable(entries: DeviceDetail['history'], withDevice = false): string {
  return table(
    ['SEQ', 'TIME', 'EVENT', ...(withDevice ? ['DEVICE'] : []), 'ACTOR', 'DETAIL'],
    entries.map((entry) => [
      String(entry.seq),
      shortTime(entry.time),
      entry.type,
      ...(withDevice ? [entry.deviceId ?? '-'] : []),
      entry.actor,
      [entry.code, entry.detail, entry.serial && `serial ${formatSerial(entry.serial)}`, entry.peer && `from ${entry.peer}`].filter(Boolean).join('; ') || '-',
    ]),
  );
}

/** `fleetgate device show ID` (GET /v1/devices/:id). */
export const deviceShowCommand: Command = adminCommand({
  path: ['device', 'show'],
  usage: 'ID [--json]',
  description: `Shows device ID: its state (and why it is disabled or revoked), the serial and expiry of its
current operational certificate, whether it is connected to the MQTT broker now and when it was
last seen, the bootstrap trust it enrolled through, every certificate it was issued (newest
first), its audit history, and its broker events: refused connections and dropped sessions,
identical ones within a minute summarised as one line with a count.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON (device, presence, connected, certificates, history, brokerEvents)',
  positionals: ['ID'],
  async run({ values, args, connect }) {
    const [id = ''] = args;
    const detail = await (await connect()).json('GET', devicePath(id), isDeviceDetail);
    if (values.json) printJson(detail);
    else printDetail(detail);
    return 0;
  },
});

/** `fleetgate device revoke ID... [--from FILE|-]` (POST /v1/devices/:id/revoke, or /v1/devices/revoke for several). */
export const deviceRevokeCommand: Command = bulkCommand({
  action: 'revoke',
  description: `Revokes the devices named (ID... and/or --from) and every certificate they hold. The broker
closes their MQTT sessions at once and refuses every reconnect (CONNACK 5); renewals are refused;
the CRL is signed again with their certificates on it, before the command returns. Revocation is
final: only \`fleetgate device reset ID\` lets a device enroll again with its bootstrap
credential. A device already revoked is left as it is ("already revoked", exit 0).
On a terminal the command asks before it revokes; --yes skips the question.`,
  reasonHelp: `  --reason R          why, an RFC 5280 reason, recorded in the CRL: ${REVOCATION_REASONS.join(', ')}
                      (any case, dashes allowed: key-compromise); anything else is refused
  --note TEXT         free text kept with the state and in the audit log
  -y, --yes           do not ask for confirmation on a terminal`,
  done: (device, reason) =>
    `device ${device.id} revoked${reason ? ` (${reason})` : ''}: its certificates are on the CRL, any MQTT session it had is closed, reconnects and renewals are refused`,
  already: (device) => `device ${device.id} already revoked${device.stateReason ? ` (${device.stateReason})` : ''}: nothing changed`,
});

/** `fleetgate device disable ID... [--from FILE|-]` (POST /v1/devices/:id/disable, or /v1/devices/disable). */
export const deviceDisableCommand: Command = bulkCommand({
  action: 'disable',
  description: `Disables the devices named (ID... and/or --from): the broker closes their MQTT sessions at once
and refuses reconnects (CONNACK 5), EST refuses their renewals, until \`fleetgate device enable
ID\`. Their certificates stay valid (not on the CRL). A device already disabled is left as it is,
its reason included ("already disabled", exit 0); a revoked device cannot be disabled.`,
  reasonHelp: '  --reason R          why (kept in the registry and the audit log)',
  done: (device, reason) => `device ${device.id} disabled${reason ? ` (${reason})` : ''}: any MQTT session it had is closed; reconnects and renewals are refused until \`fleetgate device enable ${device.id}\``,
  already: (device) => `device ${device.id} already disabled${device.stateReason ? ` (${device.stateReason})` : ''}: nothing changed`,
});

/** `fleetgate device enable ID... [--from FILE|-]` (POST /v1/devices/:id/enable, or /v1/devices/enable). */
export const deviceEnableCommand: Command = bulkCommand({
  action: 'enable',
  description: `Enables the disabled devices named (ID... and/or --from): they may connect and renew again. A
device already enabled is left as it is ("already enabled", exit 0). A revoked device cannot be
enabled (ADMIN_INVALID_STATE); reset it instead.`,
  done: (device) => `device ${device.id} enabled: it may connect and renew again`,
  already: (device) => `device ${device.id} already enabled: nothing changed`,
});

/** `fleetgate device reset ID` (POST /v1/devices/:id/reset). */
export const deviceResetCommand: Command = adminCommand({
  path: ['device', 'reset'],
  usage: 'ID [--json]',
  description: `Resets device ID: it may enroll once more with its bootstrap credential (simpleenroll), for
example after a factory reset wiped its operational key, or to bring a revoked device back. The
new enrollment revokes the certificate it had before. A device whose reset is still pending is
left as it is ("already reset", exit 0).`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON ({ "device": ..., "changed": true|false })',
  positionals: ['ID'],
  async run({ values, args, connect }: AdminCommandContext) {
    const [id = ''] = args;
    const answer = await (await connect()).json('POST', devicePath(id, 'reset'), isDeviceAnswer, { body: {} });
    if (values.json) printJson(answer);
    else if (answer.changed === false) print(`device ${answer.device.id} already reset: one more bootstrap enrollment is allowed; nothing changed`);
    else print(`device ${answer.device.id} reset: it may enroll once more with its bootstrap credential`);
    return 0;
  },
});
