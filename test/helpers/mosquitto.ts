import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { DataDir } from './fleet.ts';
import { freePort } from './ports.ts';
import { tempDir } from './temp-dir.ts';
import { waitFor } from './wait.ts';

/** A mosquitto broker configured like fleetgate's: client certificates from our root, identity as username, a namespace per device. */
export interface Mosquitto {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
}

/** A CA file holding the root and the issuing CA. */
async function caBundle(dir: string, data: DataDir): Promise<string> {
  const path = join(dir, 'ca-bundle.crt');
  await writeFile(path, data.rootPem + (await readFile(data.layout.authorityCert('issuing'), 'utf8')));
  return path;
}

/** Starts mosquitto (Debian package) with our server certificate and a per-identity ACL. */
export async function startMosquitto(t: ExecutionContext, data: DataDir): Promise<Mosquitto> {
  const dir = await tempDir(t, 'fleetgate-mosquitto-');
  const port = await freePort();
  await writeFile(join(dir, 'acl'), 'pattern readwrite devices/%u/#\n');
  await writeFile(
    join(dir, 'mosquitto.conf'),
    [
      // Started as root, mosquitto would switch to its own user, who cannot read our 0700 data dir.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'per_listener_settings false',
      'persistence false',
      `listener ${port} 127.0.0.1`,
      // Root and issuing CA: simulated devices present their leaf certificate only.
      `cafile ${await caBundle(dir, data)}`,
      `certfile ${data.layout.serverCert}`,
      `keyfile ${data.layout.serverKey}`,
      'require_certificate true',
      'use_identity_as_username true',
      'tls_version tlsv1.2',
      'set_tcp_nodelay true',
      `acl_file ${join(dir, 'acl')}`,
      'log_dest none',
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${stderr}`);
      return new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
    },
    { what: () => `mosquitto to listen on port ${port} ${stderr}`, timeoutMs: 15_000, intervalMs: 50 },
  );
  return { url: `mqtts://127.0.0.1:${port}`, port, process: child };
}
