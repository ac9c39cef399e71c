import { cpuBetween, readCpuTicks, readTreeCpuTicks, type CpuSpent, type CpuTicks } from '../proc-cpu.ts';
import type { CpuProbe } from '../broker/phase-meter.ts';

/** Where a cluster's CPU goes: fleetgate's processes (with the `--workers` primary among them), Redis, PostgreSQL. */
export type ClusterCpuPart = 'fleetgate' | 'primary' | 'redis' | 'postgres';

/** The processes of one measured setup. */
export interface ClusterProcesses {
  /** Pids whose whole process trees are fleetgate: each node's `serve` (a primary with its workers, or a single process). */
  readonly fleetgate: readonly number[];
  /** The `--workers` primary, counted alone (its own threads, not its workers) for the round-robin cost; none with one process. */
  readonly primary?: number;
  /** Redis and the PostgreSQL postmaster (its backends are its children); none for mosquitto. */
  readonly redis?: () => number;
  readonly postgres?: () => Promise<number>;
}

const NONE: CpuTicks = { user: 0, system: 0 };

function add(a: CpuTicks, b: CpuTicks): CpuTicks {
  return { user: a.user + b.user, system: a.system + b.system };
}

/**
 * The CPU of a cluster as one figure for the phase meter (`probe`: fleetgate, Redis and
 * PostgreSQL together, what a connect or a message costs the operator's machines), and by part
 * for the report. Each call of `probe` keeps its readings; `lastPhase()` is the difference of
 * the last two, which for a phase meter are its start and its stop.
 */
export class ClusterCpu {
  private readings: Record<ClusterCpuPart, CpuTicks>[] = [];

  constructor(private readonly processes: ClusterProcesses) {}

  readonly probe: CpuProbe = async () => {
    const { fleetgate, primary, redis, postgres } = this.processes;
    const trees = await Promise.all(fleetgate.map((pid) => readTreeCpuTicks(pid)));
    const reading: Record<ClusterCpuPart, CpuTicks> = {
      fleetgate: trees.reduce<CpuTicks>(add, NONE),
      primary: primary === undefined ? NONE : await readCpuTicks(primary),
      redis: redis === undefined ? NONE : await readCpuTicks(redis()),
      postgres: postgres === undefined ? NONE : await readTreeCpuTicks(await postgres()),
    };
    this.readings = [...this.readings.slice(-1), reading];
    return add(add(reading.fleetgate, reading.redis), reading.postgres);
  };

  /** CPU by part between the probe's last two readings. */
  lastPhase(): Record<ClusterCpuPart, CpuSpent> {
    const [before, after] = this.readings;
    if (!before || !after) throw new Error('the cluster CPU probe was not read twice');
    return {
      fleetgate: cpuBetween(before.fleetgate, after.fleetgate),
      primary: cpuBetween(before.primary, after.primary),
      redis: cpuBetween(before.redis, after.redis),
      postgres: cpuBetween(before.postgres, after.postgres),
    };
  }
}
