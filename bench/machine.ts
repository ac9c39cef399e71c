import { readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { execCommand } from './exec.ts';
import { clockTicksPerSecond } from './proc-cpu.ts';

/** The machine the figures were measured on: they mean little without it. */
export interface MachineInfo {
  /** `nproc` before the benchmark pinned itself (afterwards it would say 1). */
  readonly nproc: number;
  readonly cpuModel: string;
  readonly kernel: string;
  readonly node: string;
  /** The OpenSSL inside Node (what the fleetgate server's TLS runs on). */
  readonly nodeOpenssl: string;
  /** `openssl version`: what s_server and s_time run on. */
  readonly openssl: string;
  readonly clockTicksPerSecond: number;
}

/** Reads nproc, the CPU model, and the Node and OpenSSL versions. */
export async function describeMachine(): Promise<MachineInfo> {
  const [nproc, openssl, cpuinfo] = await Promise.all([
    execCommand('nproc', [], { timeoutMs: 5_000 }).then(({ stdout }) => Number(stdout.trim())),
    execCommand('openssl', ['version'], { timeoutMs: 5_000 }).then(({ stdout }) => stdout.trim()),
    readFile('/proc/cpuinfo', 'utf8').catch(() => ''),
  ]);
  return {
    nproc,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    openssl,
    clockTicksPerSecond: clockTicksPerSecond(),
  };
}
