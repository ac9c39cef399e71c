import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeTempDir } from './cleanup.ts';
import { startDaemon } from './daemon.ts';
import { execCommand } from './exec.ts';
import { dataFiles, fleetgateBootstrap, fleetgateInit } from './fleetgate-cli.ts';
import { freePort } from './free-port.ts';
import { serverCommand, type Pinning } from './pinning.ts';
import { cpuBetween, readCpuTicks, type CpuSpent } from './proc-cpu.ts';
import { progress } from './progress.ts';
import { waitForQuietMachine } from './quiet.ts';

/** Key and certificate files for s_server and s_time, cut from a fleetgate data directory. */
interface FloorMaterial {
  readonly serverLeaf: string;
  readonly serverChain: string;
  readonly serverKey: string;
  /** The CAs fleetgate accepts client certificates from: root, issuing, factory. */
  readonly clientCas: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly root: string;
}

/** The cost of a bare mTLS handshake in `openssl s_server`. */
export interface FloorResult {
  readonly connections: number;
  readonly realSeconds: number;
  readonly serverCpu: CpuSpent;
  readonly cpuMsPerHandshake: number;
  /** As `openssl s_client -brief` reports it against the same server. */
  readonly protocol: string;
  readonly cipher: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

/**
 * `fleetgate init` plus one bootstrap credential, so s_server gets the very keys fleetgate uses:
 * the P-256 server certificate with its issuing-CA chain, and a P-256 bootstrap client certificate
 * chaining through the factory CA to the P-384 root.
 */
async function prepareMaterial(dir: string): Promise<FloorMaterial> {
  const dataDir = join(dir, 'data');
  await fleetgateInit(dataDir);
  const [device] = await fleetgateBootstrap(dataDir, join(dir, 'bootstrap'), 'thermostat', 1);
  if (!device) throw new Error('bootstrap issue wrote no device');
  const files = dataFiles(dataDir);
  // tls/server.crt is leaf + issuing CA; s_server takes the leaf and the chain separately.
  const [leaf, ...chain] = (await readFile(files.serverCert, 'utf8')).match(PEM_BLOCK) ?? [];
  if (!leaf || chain.length === 0) throw new Error(`${files.serverCert} does not hold a leaf and its chain`);
  const material: FloorMaterial = {
    serverLeaf: join(dir, 'server-leaf.pem'),
    serverChain: join(dir, 'server-chain.pem'),
    serverKey: files.serverKey,
    clientCas: join(dir, 'client-cas.pem'),
    clientCert: device.certPath,
    clientKey: device.keyPath,
    root: files.rootCert,
  };
  const cas = await Promise.all([files.rootCert, files.issuingCert, files.factoryCert].map((path) => readFile(path, 'utf8')));
  await writeFile(material.serverLeaf, leaf);
  await writeFile(material.serverChain, chain.join(''));
  await writeFile(material.clientCas, cas.join(''));
  return material;
}

/**
 * One mTLS request with s_client until the server answers: the server is up, it accepts the
 * client certificate, and this is what the handshake negotiates.
 */
async function probe(port: number, material: FloorMaterial): Promise<{ protocol: string; cipher: string }> {
  const deadline = performance.now() + 15_000;
  let last = '';
  while (performance.now() < deadline) {
    try {
      const { stdout, stderr } = await execCommand(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', material.clientCert, '-key', material.clientKey, '-CAfile', material.root, '-brief', '-verify_return_error', '-ign_eof'],
        { timeoutMs: 10_000, input: 'GET / HTTP/1.0\r\n\r\n' },
      );
      const protocol = /Protocol version: (\S+)/.exec(stderr)?.[1];
      const cipher = /Ciphersuite: (\S+)/.exec(stderr)?.[1];
      if (stdout.includes('HTTP/1.0 200 ok') && protocol && cipher) return { protocol, cipher };
      last = stderr.trim().split('\n').slice(-3).join(' | ');
    } catch (error) {
      last = (error as Error).message.split('\n').slice(-2).join(' | ');
    }
    await sleep(200);
  }
  throw new Error(`openssl s_server did not accept the client certificate: ${last}`);
}

async function measure(material: FloorMaterial, options: { seconds: number; pinning: Pinning }): Promise<FloorResult> {
  const port = await freePort();
  const args = [
    's_server',
    '-accept', `127.0.0.1:${port}`,
    '-cert', material.serverLeaf,
    '-cert_chain', material.serverChain,
    '-key', material.serverKey,
    '-CAfile', material.clientCas,
    // Require a client certificate, like fleetgate's simpleenroll does, and fail the handshake
    // when it does not verify (s_server's default is to log the error and carry on).
    '-Verify', '1',
    '-verify_return_error',
    // -www answers the probe's GET without reading stdin; -quiet and -verify_quiet keep it from
    // printing per connection, which would count as handshake CPU.
    '-www', '-quiet', '-verify_quiet',
  ];
  const command = serverCommand(options.pinning, 'openssl', args);
  const daemon = startDaemon('openssl s_server', command.file, command.args);
  try {
    const negotiated = await probe(port, material);
    await waitForQuietMachine(30_000);
    const before = await readCpuTicks(daemon.pid);
    const { stdout } = await execCommand(
      'openssl',
      ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-time', String(options.seconds), '-cert', material.clientCert, '-key', material.clientKey, '-CAfile', material.root],
      { timeoutMs: options.seconds * 1000 + 30_000 },
    );
    const after = await readCpuTicks(daemon.pid);
    if (daemon.exited()) throw new Error(`openssl s_server exited during s_time:\n${daemon.outputTail()}`);
    // With TLS 1.3 s_time counts a connection whose certificate the server refused as made: the
    // server's log is the only place a refusal shows (-verify_quiet still prints errors).
    if (daemon.outputTail().includes('verify error')) {
      throw new Error(`openssl s_server refused s_time's client certificate:\n${daemon.outputTail().slice(-1000)}`);
    }
    const match = /(\d+) connections in ([\d.]+) real seconds/.exec(stdout);
    const connections = Number(match?.[1]);
    if (!match || !(connections > 0)) throw new Error(`cannot read the connection count from s_time:\n${stdout.slice(-500)}`);
    const serverCpu = cpuBetween(before, after);
    return {
      connections,
      realSeconds: Number(match[2]),
      serverCpu,
      cpuMsPerHandshake: serverCpu.totalMs / connections,
      ...negotiated,
    };
  } finally {
    await daemon.stop(2_000);
  }
}

/**
 * The floor under the enrollment figure: server CPU per full mTLS handshake (`s_time -new`) in
 * `openssl s_server` with fleetgate's own keys, read from /proc like the fleetgate server's.
 */
export async function measureOpensslFloor(options: { seconds: number; pinning: Pinning }): Promise<FloorResult> {
  const dir = await makeTempDir('floor');
  try {
    progress('openssl floor: preparing keys with fleetgate init + bootstrap issue');
    const material = await prepareMaterial(dir);
    progress(`openssl floor: s_time -new for ${options.seconds} s`);
    const result = await measure(material, options);
    progress(`openssl floor: ${result.connections} handshakes, ${result.cpuMsPerHandshake.toFixed(2)} ms server CPU each, ${result.protocol}`);
    return result;
  } finally {
    await removeTempDir(dir);
  }
}
