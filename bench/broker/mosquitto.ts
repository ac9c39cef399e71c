import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon } from '../daemon.ts';
import { freePort } from '../free-port.ts';
import { serverCommand, type Pinning } from '../pinning.ts';
import { readCommand } from '../proc-cpu.ts';
import { KEEPALIVE_SECONDS, waitForConnack, type BrokerUnderTest } from './broker-under-test.ts';
import { SERVICE_NAME, type BrokerFleet } from './fleet.ts';

/** The Debian package's broker. */
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/**
 * The version, from `mosquitto -h` ("mosquitto version 2.0.11" on its first line; it exits with
 * status 3, so its output is read whatever the status) and the Debian package's version.
 */
export function mosquittoVersion(): string {
  const help = spawnSync(MOSQUITTO_BIN, ['-h'], { encoding: 'utf8', timeout: 5_000 });
  const version = /mosquitto version [\w.]+/.exec(`${help.stdout ?? ''}${help.stderr ?? ''}`)?.[0] ?? 'mosquitto (version unknown)';
  const dpkg = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'mosquitto'], { encoding: 'utf8', timeout: 5_000 });
  return dpkg.status === 0 && dpkg.stdout ? `${version} (Debian ${dpkg.stdout.trim()})` : version;
}

/**
 * The ACL: every client reads and writes its own namespace `devices/<username>/#`, and with
 * `use_identity_as_username` the username is the certificate's CN, which for our device
 * certificates is the device id, so each device gets `devices/<id>/#` as in fleetgate's default
 * topic policy. The backend service (CN `backend`) may also read every device's topics, as
 * fleetgate's default `broker.services.backend` allows.
 */
function aclFile(): string {
  return ['pattern readwrite devices/%u/#', '', `user ${SERVICE_NAME}`, 'topic read devices/#', ''].join('\n');
}

/**
 * mosquitto.conf for mosquitto 2.0 (see `man mosquitto.conf`): one TLS listener on loopback with
 * fleetgate's server certificate, client certificates required and verified against fleetgate's
 * root, the CN as username, the ACL above. `allow_anonymous` stays at its default (false): every
 * client has a username, its CN, so none is anonymous. No persistence, as fleetgate keeps none.
 */
function mosquittoConf(port: number, fleet: BrokerFleet, aclPath: string): string {
  return [
    // Started as root, mosquitto 2.0 switches to the `mosquitto` user, who cannot read the 0700
    // data directory with the server key.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'per_listener_settings false',
    'persistence false',
    `listener ${port} 127.0.0.1`,
    `cafile ${fleet.files.rootCert}`,
    `certfile ${fleet.files.serverCert}`,
    `keyfile ${fleet.files.serverKey}`,
    'require_certificate true',
    'use_identity_as_username true',
    'set_tcp_nodelay true',
    // fleetgate's TLS 1.3 order (server preference, AES-128-GCM first); OpenSSL's default order
    // would give mosquitto AES-256-GCM and the two brokers different record costs.
    'ciphers_tls1.3 TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    `acl_file ${aclPath}`,
    // Applies to MQTT 5 clients only; the same ceiling as fleetgate's keepaliveMaxSeconds.
    'max_keepalive 1200',
    'max_connections -1',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
}

/**
 * Starts a fresh mosquitto with a generated configuration in `dir`, pinned like fleetgate, and
 * waits until the backend service gets CONNACK 0 from it.
 */
export async function startMosquitto(options: { readonly dir: string; readonly fleet: BrokerFleet; readonly pinning: Pinning }): Promise<BrokerUnderTest> {
  const port = await freePort();
  const aclPath = join(options.dir, 'mosquitto.acl');
  const confPath = join(options.dir, 'mosquitto.conf');
  await writeFile(aclPath, aclFile());
  await writeFile(confPath, mosquittoConf(port, options.fleet, aclPath));
  const command = serverCommand(options.pinning, MOSQUITTO_BIN, ['-c', confPath]);
  const daemon = startDaemon('mosquitto', command.file, command.args);
  const address = { host: '127.0.0.1', port } as const;
  try {
    await waitForConnack(daemon, address, options.fleet.service);
    const comm = await readCommand(daemon.pid);
    if (comm !== 'mosquitto') throw new Error(`pid ${daemon.pid} is ${comm}, not mosquitto`);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    kind: 'mosquitto',
    address,
    daemon,
    settings: [
      `TLS listener, require_certificate true, use_identity_as_username true, set_tcp_nodelay true, ciphers_tls1.3 as fleetgate's order, ` +
        `ACL pattern readwrite devices/%u/#, persistence false; clients ask keepalive ${KEEPALIVE_SECONDS} s`,
    ],
  };
}
