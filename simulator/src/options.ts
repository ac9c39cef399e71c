import { parseArgs } from 'node:util';
import { endpointUrlsProblem, type EndpointKind } from '@fleetgate/device-sdk/protocol';
import { SimUsageError } from './errors.ts';
import { DEFAULT_TRAFFIC, type TrafficSettings } from './profiles.ts';
import { defaultMetricsUrls } from './monitor/server-metrics.ts';

export const SCENARIOS = ['steady', 'enroll-storm', 'reconnect-storm', 'renewal-storm', 'revocation-sweep'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Everything `fleetgate-sim` was asked to do. */
export interface SimOptions {
  readonly devices: number;
  readonly mix: Readonly<Record<string, number>>;
  readonly ratePerSecond: number;
  readonly durationMs: number;
  /** How long after the last device started the run waits for every device to connect. */
  readonly settleMs: number;
  readonly scenario: Scenario;
  /** EST endpoints: one URL, or the nodes of a cluster (each device uses one, and fails over). */
  readonly estUrls: readonly string[];
  /** MQTT endpoints, as `estUrls`. */
  readonly mqttUrls: readonly string[];
  readonly root: string | undefined;
  readonly data: string | undefined;
  readonly factory: string | undefined;
  /** Operational credentials of an earlier run: connect and publish only, against any mTLS broker. */
  readonly credentials: string | undefined;
  /** Where to write the devices' operational credentials at the end of the run. */
  readonly exportCredentials: string | undefined;
  readonly reportDir: string;
  readonly maxErrorRate: number;
  readonly sourceAddresses: readonly string[];
  readonly adminUrl: string;
  readonly operatorCert: string | undefined;
  readonly operatorKey: string | undefined;
  readonly revokeShare: number;
  readonly restartCommand: string | undefined;
  readonly traffic: TrafficSettings;
  readonly json: boolean;
  /** Worker threads running the fleet (1: the main thread). */
  readonly workers: number;
  /** Devices connect with clean session off (MQTT persistent sessions). */
  readonly persistentSessions: boolean;
  /** Where to write the numbers of the QoS 1 messages each device got a PUBACK for. */
  readonly exportAcks: string | undefined;
  /** The server's Prometheus endpoints scraped during the run (none with --no-metrics). */
  readonly metricsUrls: readonly string[];
  /** The bound on the stop phase after --duration: devices still stopping then are closed by force. */
  readonly stopTimeoutMs: number;
}

export const HELP = `Usage: fleetgate-sim --devices N --est URL --mqtt URL --root FILE (--data DIR | --factory DIR) [options]

Runs N simulated thermostats, cameras and cars through the real lifecycle against a running
fleetgate: factory credential -> key on the device -> CSR -> EST enrollment -> MQTT over mutual
TLS -> telemetry, using the device SDK exactly as firmware would. Reports what it measured.

Fleet:
  --devices N            how many devices (default 100)
  --mix SPEC             share per model, e.g. thermostat=70,camera=20,car=10 (default)
  --rate R/s             devices started per second (default 100/s; "all" starts them at once)
  --duration D           how long the run lasts by the wall clock, e.g. 20s, 2m (default 20s): at
                         D the devices not started yet are left out and the fleet is stopped,
                         however loaded the simulator or the server
  --stop-timeout D       the bound on stopping the fleet after --duration (default 10s): devices
                         still stopping then are closed by force; the report says how many
  --settle D             reconnect-storm, renewal-storm, revocation-sweep: wait at most this long
                         after the last device started for all to connect before the scenario
                         (default 30s; the scenario may then run past --duration)
  --scenario S           ${SCENARIOS.join(', ')} (default steady)
  --traffic-scale X      multiply every traffic interval (0.1 = ten times as chatty; default 1)
  --persistent-sessions  devices connect with clean session off: the broker keeps their
                         subscriptions and queues QoS 1 messages for them while they are away
                         (on any node of a cluster); a QoS 1 message still waiting for its PUBACK
                         is sent again on the next connection

Server:
  --est URL[,URL...]     EST base URL (default https://127.0.0.1:8443), or the EST URLs of the
                         nodes of a cluster, comma-separated
  --mqtt URL[,URL...]    broker URL (default mqtts://127.0.0.1:8883), or the nodes' broker URLs;
                         with several, each device starts on one (the fleet spreads over them),
                         moves to the next when its node is unavailable and stays while it works;
                         the report shows devices per node and the failovers
  --root FILE            the root certificate devices pin (default: <factory>/root.crt)
  --data DIR             mint factory credentials from this data directory's factory CA
                         (runs \`fleetgate bootstrap issue\`); also the operator credential
  --factory DIR          use the credentials of a \`fleetgate bootstrap issue\` folder
  --credentials DIR      MQTT only: operational credentials written by --export-credentials;
                         devices connect and publish without enrolling, so --mqtt may point at
                         any mTLS broker that trusts the same root (mosquitto, side by side)
  --export-credentials DIR  write every device's operational credential at the end of the run
  --metrics URL[,URL...] the server's Prometheus metrics, read every second to show its side
                         (issuance latency, connected devices, refusals, CPU) beside what the
                         devices saw (default: port 9464 on each --est host,
                         http://127.0.0.1:9464/metrics); a failed read is reported once
  --no-metrics           do not read the server's metrics
  --admin URL            admin API for revocation-sweep (default https://127.0.0.1:9443)
  --operator-cert FILE   operator certificate (default <data>/operator/operator.crt)
  --operator-key FILE    operator key (default <data>/operator/operator.key)
  --revoke-share X       share of the fleet revoked by revocation-sweep (default 0.1)
  --restart-cmd CMD      shell command that restarts the server, for reconnect-storm (without it
                         the simulator waits for an operator to restart the server)
  --workers N            run the fleet in N worker threads (when the server is on another machine
                         and the simulator has cores of its own; steady and enroll-storm only)
  --source-addresses L   comma-separated 127.x addresses to connect from (default: 127.0.0.1,
                         one more per 20,000 devices: one source address reaches ~28k connections)

Output:
  --report DIR           where report.json and report.html go (default ./reports)
  --max-error-rate X     exit 1 when errors / (devices + messages) exceeds X (default 0.01)
  --json                 print the report as JSON on stdout instead of the summary
  --export-acks FILE     write, per device, the numbers of the QoS 1 messages the broker
                         acknowledged (every payload carries its number, "seq"), so a backend
                         can check that it received each of them
  -h, --help             this help

Progress is a live line on a terminal, a plain line every 5 s otherwise. Every time, rate and
chart axis is wall-clock time (monotonic). The simulator watches its own event-loop delay and CPU
and warns when it, not the server, is the bottleneck.`;

function duration(text: string, name = 'duration'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new SimUsageError(`--${name}: "${text}" is not a duration like 20s or 2m`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * factor;
}

function positive(text: string | undefined, name: string, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > max) throw new SimUsageError(`--${name} must be a number above 0 and at most ${max}`);
  return value;
}

/** Parses `--est` or `--mqtt`: one URL, or several separated by commas. */
function endpoints(kind: EndpointKind, text: string): string[] {
  const urls = text.split(',').map((url) => url.trim());
  const problem = endpointUrlsProblem(kind, urls);
  if (problem !== undefined) throw new SimUsageError(`--${kind}: ${problem}`);
  return urls;
}

/** Parses `thermostat=70,camera=20,car=10` into shares that sum to 1. */
export function parseMix(text: string): Record<string, number> {
  const mix: Record<string, number> = {};
  for (const part of text.split(',')) {
    const [model, weight] = part.split('=');
    if (!model || !/^[a-z][a-z0-9-]{0,31}$/.test(model) || !weight || !(Number(weight) >= 0)) throw new SimUsageError(`--mix: "${part}" is not model=weight`);
    mix[model] = Number(weight);
  }
  const total = Object.values(mix).reduce((sum, weight) => sum + weight, 0);
  if (total <= 0) throw new SimUsageError('--mix: the weights add up to 0');
  for (const model of Object.keys(mix)) mix[model] = (mix[model] as number) / total;
  return mix;
}

/** Devices per model for `devices` and `mix` (rounding keeps the total exact). */
export function countsFor(devices: number, mix: Readonly<Record<string, number>>): Record<string, number> {
  const entries = Object.entries(mix);
  const counts: Record<string, number> = {};
  let assigned = 0;
  entries.forEach(([model, share], index) => {
    const count = index === entries.length - 1 ? devices - assigned : Math.round(devices * share);
    counts[model] = count;
    assigned += count;
  });
  return counts;
}

/** Parses the command line; `undefined` when --help was asked. */
export function parseSimArgs(argv: string[]): SimOptions | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        devices: { type: 'string' },
        mix: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        settle: { type: 'string' },
        scenario: { type: 'string' },
        'traffic-scale': { type: 'string' },
        est: { type: 'string' },
        mqtt: { type: 'string' },
        root: { type: 'string' },
        data: { type: 'string' },
        factory: { type: 'string' },
        credentials: { type: 'string' },
        'export-credentials': { type: 'string' },
        admin: { type: 'string' },
        'operator-cert': { type: 'string' },
        'operator-key': { type: 'string' },
        'revoke-share': { type: 'string' },
        'restart-cmd': { type: 'string' },
        'source-addresses': { type: 'string' },
        report: { type: 'string' },
        'max-error-rate': { type: 'string' },
        json: { type: 'boolean' },
        workers: { type: 'string' },
        'persistent-sessions': { type: 'boolean' },
        'export-acks': { type: 'string' },
        metrics: { type: 'string' },
        'no-metrics': { type: 'boolean' },
        'stop-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new SimUsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const devices = positive(values.devices, 'devices', 100, 1_000_000);
  if (!Number.isInteger(devices)) throw new SimUsageError('--devices must be a whole number');
  if (!values.data && !values.factory && !values.credentials) throw new SimUsageError('--data DIR, --factory DIR or --credentials DIR is required (where the devices\' credentials come from)');
  const scenario = (values.scenario ?? 'steady') as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new SimUsageError(`--scenario must be one of ${SCENARIOS.join(', ')}`);
  const rateText = values.rate ?? (scenario === 'enroll-storm' ? 'all' : '100/s');
  const ratePerSecond = rateText === 'all' ? Number.POSITIVE_INFINITY : positive(rateText.replace(/\/s$/, ''), 'rate', 100, 1_000_000);
  const scale = positive(values['traffic-scale'], 'traffic-scale', 1, 1000);
  const maxErrorRate = values['max-error-rate'] === undefined ? 0.01 : Number(values['max-error-rate']);
  if (!(maxErrorRate >= 0 && maxErrorRate <= 1)) throw new SimUsageError('--max-error-rate must be between 0 and 1');
  const revokeShare = values['revoke-share'] === undefined ? 0.1 : Number(values['revoke-share']);
  if (!(revokeShare > 0 && revokeShare <= 1)) throw new SimUsageError('--revoke-share must be above 0 and at most 1');
  const addresses = values['source-addresses']?.split(',').map((address) => address.trim()).filter(Boolean)
    ?? Array.from({ length: Math.ceil(devices / 20_000) }, (_, index) => `127.0.0.${index + 1}`);
  for (const address of addresses) if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) && address !== '::1') throw new SimUsageError(`--source-addresses: ${address} is not a loopback address`);
  const workers = values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new SimUsageError('--workers must be a whole number from 1 to 64');
  if (workers > 1 && scenario !== 'steady' && scenario !== 'enroll-storm') throw new SimUsageError(`--workers runs steady and enroll-storm only (${scenario} steers the whole fleet from one thread)`);
  if (workers > 1 && values['export-credentials']) throw new SimUsageError('--export-credentials needs --workers 1');
  if (workers > 1 && values['export-acks']) throw new SimUsageError('--export-acks needs --workers 1');
  const data = values.data;
  if (values.metrics !== undefined && values['no-metrics']) throw new SimUsageError('--metrics and --no-metrics exclude each other');
  const estUrls = endpoints('est', values.est ?? 'https://127.0.0.1:8443');
  const metricsUrls = values['no-metrics'] ? [] : values.metrics === undefined ? defaultMetricsUrls(estUrls) : values.metrics.split(',').map((url) => url.trim());
  for (const url of metricsUrls) if (!/^https?:\/\/[^/]+/.test(url)) throw new SimUsageError(`--metrics: ${url} is not an http:// or https:// URL`);
  return {
    workers,
    devices,
    mix: parseMix(values.mix ?? 'thermostat=70,camera=20,car=10'),
    ratePerSecond,
    durationMs: duration(values.duration ?? '20s'),
    settleMs: duration(values.settle ?? '30s', 'settle'),
    scenario,
    estUrls,
    mqttUrls: endpoints('mqtt', values.mqtt ?? 'mqtts://127.0.0.1:8883'),
    root: values.root,
    data,
    factory: values.factory,
    credentials: values.credentials,
    exportCredentials: values['export-credentials'],
    reportDir: values.report ?? './reports',
    maxErrorRate,
    sourceAddresses: addresses,
    adminUrl: values.admin ?? 'https://127.0.0.1:9443',
    operatorCert: values['operator-cert'] ?? (data ? `${data}/operator/operator.crt` : undefined),
    operatorKey: values['operator-key'] ?? (data ? `${data}/operator/operator.key` : undefined),
    revokeShare,
    restartCommand: values['restart-cmd'],
    traffic: { ...DEFAULT_TRAFFIC, scale },
    json: values.json ?? false,
    persistentSessions: values['persistent-sessions'] ?? false,
    exportAcks: values['export-acks'],
    metricsUrls,
    stopTimeoutMs: duration(values['stop-timeout'] ?? '10s', 'stop-timeout'),
  };
}
