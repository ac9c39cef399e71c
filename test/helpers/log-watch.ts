import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { withDeadline } from './wait.ts';

/** One line a server logged, parsed. */
export type LogLine = Record<string, unknown> & { msg?: string };

/**
 * A logger (info and above) whose lines a test can wait for: where no other event says that a
 * server noticed something (a Redis connection failed), its log does.
 */
export class LogWatcher {
  readonly lines: LogLine[] = [];
  private readonly events = new EventEmitter<{ line: [LogLine] }>();
  readonly logger: Logger = pino({ level: 'info' }, {
    write: (text: string) => {
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      this.events.emit('line', line);
    },
  });

  /** The first line (logged before or after the call) for which `accept` holds, within the deadline. */
  line(accept: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine> {
    const seen = this.lines.find(accept);
    if (seen) return Promise.resolve(seen);
    let listener: ((line: LogLine) => void) | undefined;
    const found = new Promise<LogLine>((resolve) => {
      listener = (line) => {
        if (accept(line)) resolve(line);
      };
      this.events.on('line', listener);
    });
    return withDeadline(found, { what, timeoutMs }).finally(() => {
      if (listener) this.events.off('line', listener);
    });
  }
}
