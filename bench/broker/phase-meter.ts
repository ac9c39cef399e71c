import { cpuBetween, readCpuTicks, readSystemTicks, systemBetween, type CpuSpent } from '../proc-cpu.ts';

/** CPU spent during one timed phase, by whom. */
export interface PhaseReading {
  readonly wallMs: number;
  /** The broker process, every thread, from /proc/<pid>/stat. */
  readonly brokerCpu: CpuSpent;
  /** This process: the load generator (every client). */
  readonly loadCpuMs: number;
  /** CPU (in cores) busy machine-wide beyond broker and load generator: other processes, loopback softirq. */
  readonly otherCores: number;
  /** CPU (in cores) the hypervisor took away. */
  readonly stealCores: number;
}

/**
 * Reads the broker's CPU, the load generator's CPU and the machine's at the start of a phase;
 * `stop()` reads them again and returns the differences; `brokerCpuSinceStart()` reads the
 * broker's alone, later (after a settle pause).
 */
export async function startPhaseMeter(brokerPid: number): Promise<{ stop(): Promise<PhaseReading>; brokerCpuSinceStart(): Promise<CpuSpent> }> {
  const brokerBefore = await readCpuTicks(brokerPid);
  const systemBefore = await readSystemTicks();
  const loadBefore = process.cpuUsage();
  const started = performance.now();
  return {
    async brokerCpuSinceStart() {
      return cpuBetween(brokerBefore, await readCpuTicks(brokerPid));
    },
    async stop() {
      const wallMs = performance.now() - started;
      const load = process.cpuUsage(loadBefore);
      const brokerCpu = cpuBetween(brokerBefore, await readCpuTicks(brokerPid));
      const system = systemBetween(systemBefore, await readSystemTicks());
      const loadCpuMs = (load.user + load.system) / 1000;
      return {
        wallMs,
        brokerCpu,
        loadCpuMs,
        otherCores: Math.max(0, system.busyMs - brokerCpu.totalMs - loadCpuMs) / wallMs,
        stealCores: system.stealMs / wallMs,
      };
    },
  };
}
