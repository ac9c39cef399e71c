import { Progress } from '../../simulator/src/index.ts';
import { withDeadline } from './wait.ts';

/** Quiet progress that lets a test wait for one of the simulator's notes (its log lines). */
export class NoteWatcher extends Progress {
  private readonly notes: string[] = [];
  private readonly listeners = new Set<() => void>();

  constructor() {
    super(process.stderr, true);
  }

  /** The last progress line (the live line a terminal would show). */
  lastUpdate = '';

  override update(line: string): void {
    this.lastUpdate = line;
  }

  /** How many notes matched `pattern` so far. */
  count(pattern: RegExp): number {
    return this.notes.filter((note) => pattern.test(note)).length;
  }

  override note(line: string): void {
    this.notes.push(line);
    for (const listener of this.listeners) listener();
  }

  /** Resolves when a note matching `pattern` has been written (also one written before the call). */
  line(pattern: RegExp, what: string): Promise<string> {
    const found = new Promise<string>((resolve) => {
      const check = (): void => {
        const hit = this.notes.find((note) => pattern.test(note));
        if (hit === undefined) return;
        this.listeners.delete(check);
        resolve(hit);
      };
      this.listeners.add(check);
      check();
    });
    return withDeadline(found, { what, timeoutMs: 120_000 });
  }
}
