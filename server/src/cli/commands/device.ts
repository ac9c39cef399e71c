import type { DeviceRecord, DeviceState, RevocationReason } from '../../registry/types.ts';
import { integerOption, UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption, type AdminCommandContext } from '../admin-command.ts';
import { isDeviceAnswer, isDeviceDetail, isDevicePage, type DeviceDetail } from '../api-types.ts';
import { CliError } from '../errors.ts';
import { formatSerial } from '../../pki/serial.ts';
import { count, print, printJson, shortTime, table } from '../format.ts';

const STATES: readonly DeviceState[] = ['enrolled', 'disabled', 'revoked'];
/** The admin API's largest page (MAX_LIST in server/src/admin/routes/devices.ts). */
const MAX_PAGE = 10_000;

/** RFC 5280 §5.3.1 reason names that make sense for a device certificate. */
const REVOCATION_REASONS: readonly RevocationReason[] = ['keyCompromise', 'cessationOfOperation', 'affiliationChanged', 'superseded', 'unspecified'];

/** `key-compromise`, `KeyCompromise`, `key compromise` → `keyCompromise`; anything else is free text. */
export function canonicalRevocationReason(reason: string): string {
  const squash = (text: string): string => text.toLowerCase().replace(/[\s_-]+/g, '');
  return REVOCATION_REASONS.find((name) => squash(name) === squash(reason)) ?? reason;
}

const devicePath = (id: string, action = ''): string => `/v1/devices/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;

function stateText(device: DeviceRecord): string {
  return device.stateReason ? `${device.state} (${device.stateReason})` : device.state;
}

/** `fleetgate device list`: every device, page after page (GET /v1/devices). */
export const deviceListCommand: Command = adminCommand({
  path: ['device', 'list'],
  usage: '[--state S] [--model M] [--json]',
  description: `Lists every device the registry knows, one page of the admin API after the other until
the last, sorted by id: model, state, expiry of the current operational certificate, and when
the record last changed. \`fleetgate device show ID\` gives one device in full.`,
  options: { state: { type: 'string' }, model: { type: 'string' }, json: { type: 'boolean' }, 'page-size': { type: 'string' } },
  optionsHelp: `  --state S           only devices in state S: ${STATES.join(', ')}
  --model M           only devices of model M
  --json              print the devices as JSON: { "devices": [...] } (every page joined)
  --page-size N       devices per API request (default 1000, at most ${MAX_PAGE})`,
  positionals: [],
  async run({ values, connect }) {
    const state = stringOption(values, 'state');
    if (state !== undefined && !STATES.includes(state as DeviceState)) throw new UsageError(`--state must be one of ${STATES.join(', ')} (got ${state})`);
    const model = stringOption(values, 'model');
    const pageSize = integerOption(values, 'page-size', 1000, 1, MAX_PAGE);
    const client = await connect();
    const devices: DeviceRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await client.json('GET', '/v1/devices', isDevicePage, { query: { state, model, after, limit: pageSize } });
      devices.push(...page.devices);
      if (page.next === undefined || page.devices.length === 0) break;
      if (page.next === after) throw new CliError('CLI_BAD_RESPONSE', `the admin API at ${client.where} repeated the page after ${after}`);
      after = page.next;
    }
    if (values.json) {
      printJson({ devices });
      return 0;
    }
    const filter = [state && `state ${state}`, model && `model ${model}`].filter(Boolean).join(', ');
    if (devices.length === 0) {
      print(`no devices${filter ? ` (${filter})` : ''}`);
      return 0;
    }
    print(
      table(
        ['ID', 'MODEL', 'STATE', 'CERT EXPIRES', 'UPDATED'],
        devices.map((device) => [device.id, device.model, stateText(device), shortTime(device.certNotAfter), shortTime(device.updatedAt)]),
      ),
    );
    print(`${count(devices.length, 'device')}${filter ? ` (${filter})` : ''}`);
    return 0;
  },
});

function printDetail(detail: DeviceDetail): void {
  const { device, presence } = detail;
  const connected = detail.connected
    ? `yes, since ${shortTime(presence?.connectedAt)}${presence?.peer ? ` from ${presence.peer}` : ''}`
    : presence
      ? `no, since ${shortTime(presence.disconnectedAt)}`
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
first) and its audit history.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON (device, presence, connected, certificates, history)',
  positionals: ['ID'],
  async run({ values, args, connect }) {
    const [id = ''] = args;
    const detail = await (await connect()).json('GET', devicePath(id), isDeviceDetail);
    if (values.json) printJson(detail);
    else printDetail(detail);
    return 0;
  },
});

/** What a state change says it did, for the human output. */
type Outcome = (device: DeviceRecord, reason: string | undefined) => string;

function stateCommand(options: {
  action: 'revoke' | 'disable' | 'enable' | 'reset';
  description: string;
  reason?: string;
  outcome: Outcome;
}): Command {
  return adminCommand({
    path: ['device', options.action],
    usage: `ID${options.reason ? ' [--reason R]' : ''} [--json]`,
    description: options.description,
    options: { ...(options.reason ? { reason: { type: 'string' } } : {}), json: { type: 'boolean' } },
    optionsHelp: `${options.reason ? `${options.reason}\n` : ''}  --json              print the admin API's JSON (the device record after the change)`,
    positionals: ['ID'],
    async run({ values, args, connect }: AdminCommandContext) {
      const [id = ''] = args;
      const given = stringOption(values, 'reason');
      if (given !== undefined && given.trim() === '') throw new UsageError('--reason must not be empty');
      const reason = given === undefined ? undefined : options.action === 'revoke' ? canonicalRevocationReason(given.trim()) : given.trim();
      const answer = await (await connect()).json('POST', devicePath(id, options.action), isDeviceAnswer, { body: reason === undefined ? {} : { reason } });
      if (values.json) printJson(answer);
      else print(options.outcome(answer.device, reason));
      return 0;
    },
  });
}

/** `fleetgate device revoke ID` (POST /v1/devices/:id/revoke). */
export const deviceRevokeCommand: Command = stateCommand({
  action: 'revoke',
  description: `Revokes device ID and every certificate it holds. The broker closes its MQTT session at once
and refuses every reconnect (CONNACK 5); renewals are refused; the CRL is signed again with its
certificates on it. Revocation is final: only \`fleetgate device reset ID\` lets the device
enroll again with its bootstrap credential.`,
  reason: `  --reason R          why: an RFC 5280 reason name, recorded in the CRL (keyCompromise,
                      cessationOfOperation, affiliationChanged, superseded, unspecified; any case),
                      or free text (kept in the registry and audit log; CRL reason unspecified)`,
  outcome: (device, reason) =>
    `device ${device.id} revoked${reason ? ` (${reason})` : ''}: its certificates are on the CRL, any MQTT session it had is closed, reconnects and renewals are refused`,
});

/** `fleetgate device disable ID` (POST /v1/devices/:id/disable). */
export const deviceDisableCommand: Command = stateCommand({
  action: 'disable',
  description: `Disables device ID: the broker closes its MQTT session at once and refuses reconnects
(CONNACK 5), EST refuses its renewals, until \`fleetgate device enable ID\`. Its certificates
stay valid (not on the CRL).`,
  reason: '  --reason R          why (kept in the registry and the audit log)',
  outcome: (device, reason) => `device ${device.id} disabled${reason ? ` (${reason})` : ''}: any MQTT session it had is closed; reconnects and renewals are refused until \`fleetgate device enable ${device.id}\``,
});

/** `fleetgate device enable ID` (POST /v1/devices/:id/enable). */
export const deviceEnableCommand: Command = stateCommand({
  action: 'enable',
  description: 'Enables a disabled device ID: it may connect and renew again. A revoked device cannot be\nenabled (ADMIN_INVALID_STATE); reset it instead.',
  outcome: (device) => `device ${device.id} enabled: it may connect and renew again`,
});

/** `fleetgate device reset ID` (POST /v1/devices/:id/reset). */
export const deviceResetCommand: Command = stateCommand({
  action: 'reset',
  description: `Resets device ID: it may enroll once more with its bootstrap credential (simpleenroll), for
example after a factory reset wiped its operational key, or to bring a revoked device back. The
new enrollment revokes the certificate it had before.`,
  outcome: (device) => `device ${device.id} reset: it may enroll once more with its bootstrap credential`,
});
