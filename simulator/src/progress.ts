import type { TimePoint } from './report/types.ts';

const ORDER = ['idle', 'enrolling', 'connecting', 'connected', 'renewing', 'backing-off', 'refused', 'stopped'];

/** Devices per MQTT endpoint, short: `127.0.0.1:8883 12, 127.0.0.1:9883 8`. */
export function perNodeText(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .map(([url, count]) => `${url.replace(/^mqtts:\/\//, '')} ${count}`)
    .join(', ');
}

/** A rate for a progress line: whole numbers, one decimal below 10. */
const rate = (value: number): string => (value >= 10 ? String(Math.round(value)) : String(Math.round(value * 10) / 10));

/**
 * One line of progress: elapsed wall-clock seconds (monotonic), devices by state, rates over the
 * real interval, errors; connected per node when there are several; the simulator's own load and
 * what the server says when its metrics are read.
 */
export function progressLine(point: TimePoint, total: number, errors: number): string {
  const states = ORDER.filter((state) => point.states[state]).map((state) => `${state} ${point.states[state]}`).join(', ');
  const nodes = Object.keys(point.connectedPerNode).length > 1 ? ` | per node ${perNodeText(point.connectedPerNode)}` : '';
  const load = ` | sim cpu ${point.simulator.cpuCores.toFixed(2)} loop p99 ${Math.round(point.simulator.loopDelayP99Ms)} ms${point.simulator.saturated ? ' SATURATED' : ''}`;
  const server = point.server ? ` | server connected ${point.server.connectedDevices}${point.server.cpuCores === null ? '' : ` cpu ${point.server.cpuCores.toFixed(2)}`}` : '';
  return `[${point.t.toFixed(0).padStart(4)}s] ${states || 'starting'} of ${total} | enroll ${rate(point.enrollmentsPerSecond)}/s connect ${rate(point.connectsPerSecond)}/s msg ${rate(point.messagesPerSecond)}/s${nodes} | errors ${errors}${load}${server}`;
}

/** Live progress: a rewritten line on a terminal, a plain line every `plainEverySeconds` (of wall-clock time) otherwise. */
export class Progress {
  private lastPlainPeriod = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly quiet: boolean,
    private readonly plainEverySeconds = 5,
  ) {}

  /** Shows `line`, taken `elapsedSeconds` after the start: without a terminal, the first line of each period. */
  update(line: string, elapsedSeconds: number): void {
    if (this.quiet) return;
    if (this.stream.isTTY) {
      this.stream.write(`\r\u001b[2K${line}`);
      return;
    }
    const period = Math.floor(elapsedSeconds / this.plainEverySeconds);
    if (period > this.lastPlainPeriod) {
      this.lastPlainPeriod = period;
      this.stream.write(`${line}\n`);
    }
  }

  note(line: string): void {
    if (this.quiet) return;
    this.stream.write(`${this.stream.isTTY ? '\r\u001b[2K' : ''}${line}\n`);
  }

  done(): void {
    if (!this.quiet && this.stream.isTTY) this.stream.write('\n');
  }
}
