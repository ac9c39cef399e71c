import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

/** CPU time a process has used so far, in clock ticks, as /proc/<pid>/stat reports it. */
export interface CpuTicks {
  readonly user: number;
  readonly system: number;
  /** utime + stime of the main thread alone (the task whose id is the pid), where it was read. */
  readonly mainThread?: number;
}

/** CPU time spent between two samples, in milliseconds. */
export interface CpuSpent {
  readonly userMs: number;
  readonly systemMs: number;
  readonly totalMs: number;
  /** Of totalMs, the main thread's (JavaScript, and in Node the TLS handshakes); NaN where not read. */
  readonly mainThreadMs: number;
}

let ticksPerSecond: number | undefined;

/**
 * `getconf CLK_TCK`: the unit of utime/stime in /proc. Almost always 100, but read rather than
 * assumed because a wrong value would scale every CPU figure.
 */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (!Number.isInteger(value) || value <= 0) throw new Error(`getconf CLK_TCK returned ${value}`);
    ticksPerSecond = value;
  }
  return ticksPerSecond;
}

/** The fields of /proc/<pid>/stat the benchmark uses. */
interface ProcStat {
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
  /** CPU of its children that exited and were waited for (fields 16 and 17). */
  readonly cutime: number;
  readonly cstime: number;
}

function parseStat(stat: string, pid: number | string): ProcStat {
  // Field 2 (comm) is in parentheses and may itself contain spaces or ')': split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so ppid (field 4) is at 1 and utime..cstime (fields 14-17) at 11-14.
  const [ppid, utime, stime, cutime, cstime] = [fields[1], fields[11], fields[12], fields[13], fields[14]].map(Number);
  if (![ppid, utime, stime, cutime, cstime].every(Number.isFinite)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { ppid: ppid as number, utime: utime as number, stime: stime as number, cutime: cutime as number, cstime: cstime as number };
}

/**
 * utime and stime of a whole process (every thread: the main thread, libuv's pool, LevelDB's
 * compaction thread, V8's GC helpers), from /proc/<pid>/stat.
 */
export async function readCpuTicks(pid: number): Promise<CpuTicks> {
  const stat = parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'), pid);
  // The main thread apart from the rest: what the other threads (GC helpers, the thread pool)
  // take shows in the difference.
  const main = parseStat(await readFile(`/proc/${pid}/task/${pid}/stat`, 'utf8'), pid);
  return { user: stat.utime, system: stat.stime, mainThread: main.utime + main.stime };
}

/** CPU of a process and its descendants at one moment, and how many processes that was. */
export interface TreeCpuTicks extends CpuTicks {
  readonly processes: number;
}

/**
 * CPU of a process and all its descendants (PostgreSQL: the postmaster, its backends and
 * background workers), in clock ticks. Each process counts utime + stime + cutime + cstime:
 * a backend that exits between two samples is waited for by the postmaster, and its CPU moves
 * into the postmaster's cutime/cstime, so the difference of two samples still holds it.
 */
export async function readTreeCpuTicks(rootPid: number): Promise<TreeCpuTicks> {
  const stats = new Map<number, ProcStat>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    // A process may end between readdir and the read: it is simply not counted here.
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    if (text !== undefined) stats.set(Number(name), parseStat(text, name));
  }
  if (!stats.has(rootPid)) throw new Error(`no process ${rootPid}`);
  const children = new Map<number, number[]>();
  for (const [pid, stat] of stats) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), pid]);
  let user = 0;
  let system = 0;
  let processes = 0;
  const pending = [rootPid];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    const stat = stats.get(pid);
    if (!stat) continue;
    user += stat.utime + stat.cutime;
    system += stat.stime + stat.cstime;
    processes++;
    pending.push(...(children.get(pid) ?? []));
  }
  return { user, system, processes };
}

/** Milliseconds of CPU between two samples of the same process. */
export function cpuBetween(before: CpuTicks, after: CpuTicks): CpuSpent {
  const msPerTick = 1000 / clockTicksPerSecond();
  const userMs = (after.user - before.user) * msPerTick;
  const systemMs = (after.system - before.system) * msPerTick;
  const mainThreadMs = before.mainThread !== undefined && after.mainThread !== undefined ? (after.mainThread - before.mainThread) * msPerTick : Number.NaN;
  return { userMs, systemMs, totalMs: userMs + systemMs, mainThreadMs };
}

/** A memory figure of a process in KiB from /proc/<pid>/status. */
async function readStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Resident set size of a process in KiB (VmRSS). */
export function readRssKiB(pid: number): Promise<number> {
  return readStatusKiB(pid, 'VmRSS');
}

/** The process's peak RSS since it started (the kernel's high-water mark, VmHWM). */
export function readPeakRssKiB(pid: number): Promise<number> {
  return readStatusKiB(pid, 'VmHWM');
}

/** The executable name of a process (/proc/<pid>/comm), to check a pid is the program we think. */
export async function readCommand(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
}

/** Machine-wide CPU time from /proc/stat, in clock ticks, summed over all CPUs. */
export interface SystemTicks {
  /** user + nice + system + irq + softirq: time some CPU did work. */
  readonly busy: number;
  /** Time the hypervisor ran something else while a CPU wanted to run (a VM being squeezed). */
  readonly steal: number;
}

/** The aggregate `cpu` line of /proc/stat. */
export async function readSystemTicks(): Promise<SystemTicks> {
  const stat = await readFile('/proc/stat', 'utf8');
  const line = stat.split('\n').find((entry) => entry.startsWith('cpu '));
  const [user, nice, system, , , irq, softirq, steal] = (line ?? '').trim().split(/\s+/).slice(1).map(Number);
  const busy = [user, nice, system, irq, softirq].reduce<number>((sum, value) => sum + (value ?? Number.NaN), 0);
  if (!Number.isFinite(busy)) throw new Error('cannot parse /proc/stat');
  return { busy, steal: steal ?? 0 };
}

/** Busy and stolen milliseconds between two /proc/stat samples. */
export function systemBetween(before: SystemTicks, after: SystemTicks): { busyMs: number; stealMs: number } {
  const msPerTick = 1000 / clockTicksPerSecond();
  return { busyMs: (after.busy - before.busy) * msPerTick, stealMs: (after.steal - before.steal) * msPerTick };
}
