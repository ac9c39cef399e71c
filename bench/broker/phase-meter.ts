import { cpuBetween, readCpuTicks, readSystemTicks, systemBetween, type CpuSpent, type CpuTicks } from '../proc-cpu.ts';

/** Reads the CPU used so far by what is measured: one process, or a cluster's processes together. */
export type CpuProbe = () => Promise<CpuTicks>;

/** The probe of what is measured: one process by its pid, or a probe as given. */
export function cpuProbe(broker: number | CpuProbe): CpuProbe {
  return typeof broker === 'number' ? () => readCpuTicks(broker) : broker;
}

/** CPU spent during one timed phase, by whom. */
export interface PhaseReading {
  readonly wallMs: number;
  /** The broker process, every thread, from /proc/<pid>/stat (or every process of a cluster: its probe). */
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
export async function startPhaseMeter(broker: number | CpuProbe): Promise<{ stop(): Promise<PhaseReading>; brokerCpuSinceStart(): Promise<CpuSpent> }> {
  const readBroker = cpuProbe(broker);
  const brokerBefore = await readBroker();
  const systemBefore = await readSystemTicks();
  const loadBefore = process.cpuUsage();
  const started = performance.now();
  return {
    async brokerCpuSinceStart() {
      return cpuBetween(brokerBefore, await readBroker());
    },
    async stop() {
      const wallMs = performance.now() - started;
      const load = process.cpuUsage(loadBefore);
      const brokerCpu = cpuBetween(brokerBefore, await readBroker());
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
