import type { TimePoint } from './report/types.ts';

const ORDER = ['idle', 'enrolling', 'connecting', 'connected', 'renewing', 'backing-off', 'refused', 'stopped'];

/** Devices per MQTT endpoint, short: `127.0.0.1:8883 12, 127.0.0.1:9883 8`. */
export function perNodeText(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .map(([url, count]) => `${url.replace(/^mqtts:\/\//, '')} ${count}`)
    .join(', ');
}

/** One line of progress: elapsed time, devices by state, rates, errors; connected per node when there are several. */
export function progressLine(point: TimePoint, total: number, errors: number): string {
  const states = ORDER.filter((state) => point.states[state]).map((state) => `${state} ${point.states[state]}`).join(', ');
  const nodes = Object.keys(point.connectedPerNode).length > 1 ? ` | per node ${perNodeText(point.connectedPerNode)}` : '';
  return `[${String(point.t).padStart(4)}s] ${states || 'starting'} of ${total} | enroll ${point.enrollmentsPerSecond}/s connect ${point.connectsPerSecond}/s msg ${point.messagesPerSecond}/s${nodes} | errors ${errors}`;
}

/** Live progress: a rewritten line on a terminal, a plain line every `plainEverySeconds` otherwise. */
export class Progress {
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly quiet: boolean,
    private readonly plainEverySeconds = 5,
  ) {}

  update(line: string, t: number): void {
    if (this.quiet) return;
    if (this.stream.isTTY) this.stream.write(`\r\u001b[2K${line}`);
    else if (t % this.plainEverySeconds === 0) this.stream.write(`${line}\n`);
  }

  note(line: string): void {
    if (this.quiet) return;
    this.stream.write(`${this.stream.isTTY ? '\r\u001b[2K' : ''}${line}\n`);
  }

  done(): void {
    if (!this.quiet && this.stream.isTTY) this.stream.write('\n');
  }
}
