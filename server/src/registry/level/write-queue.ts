import type { AuditEntry, AuditEvent } from '../types.ts';
import { sealAuditEntry } from '../audit-chain.ts';

/** One write to the store. */
export type WriteOp = { readonly type: 'put'; readonly key: string; readonly value: string } | { readonly type: 'del'; readonly key: string };

/** What the queue needs from the store underneath. */
export interface BatchStore {
  get(key: string): Promise<string | undefined>;
  batch(ops: WriteOp[], options: { sync: boolean }): Promise<void>;
}

/** Head of the audit chain. */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/** Key of an audit entry: zero-padded so lexical order is numeric order. */
export function auditKey(seq: number): string {
  return `a!${seq.toString().padStart(12, '0')}`;
}

export const AUDIT_HEAD_KEY = 'm!audit-head';

/**
 * A transaction handed to a queued job. Reads see the writes of jobs earlier in the same round
 * (they are not on disk yet); writes become visible to later jobs only if the job succeeds.
 */
export class QueueTransaction {
  readonly ops: WriteOp[] = [];
  readonly events: AuditEvent[] = [];
  private readonly local = new Map<string, string | null>();

  constructor(
    private readonly store: BatchStore,
    private readonly roundOverlay: ReadonlyMap<string, string | null>,
  ) {}

  async get(key: string): Promise<string | undefined> {
    for (const layer of [this.local, this.roundOverlay]) {
      if (layer.has(key)) return layer.get(key) ?? undefined;
    }
    return this.store.get(key);
  }

  put(key: string, value: string): void {
    this.ops.push({ type: 'put', key, value });
    this.local.set(key, value);
  }

  del(key: string): void {
    this.ops.push({ type: 'del', key });
    this.local.set(key, null);
  }

  audit(event: AuditEvent): void {
    this.events.push(event);
  }
}

interface Job<T> {
  readonly run: (tx: QueueTransaction) => Promise<T>;
  readonly sync: boolean;
  readonly resolve: (value: { result: T; audit: AuditEntry[] }) => void;
  readonly reject: (error: unknown) => void;
}

/** Called after a round is on disk, with every audit entry it wrote. */
export type RoundListener = (committed: { audit: AuditEntry[] }) => void;

/**
 * The single writer of the registry. LevelDB has no compare-and-swap, so every
 * read-modify-write runs here, one job at a time. Jobs that queue up while a batch is being
 * written go into the next batch together (group commit): one fsync covers many issuances, so
 * durability does not cap throughput at one fsync per enrollment.
 */
export class WriteQueue {
  private waiting: Job<unknown>[] = [];
  private draining: Promise<void> | undefined;

  constructor(
    private readonly store: BatchStore,
    private head: AuditHead,
    private readonly now: () => Date = () => new Date(),
    private readonly maxRound = 256,
    private readonly onBatchWritten?: (seconds: number) => void,
  ) {}

  /** Current audit head (seq of the last entry and its hash). */
  get auditHead(): AuditHead {
    return this.head;
  }

  /** Runs `job` in the writer; resolves once its writes are on disk (fsynced when `sync`). */
  run<T>(job: (tx: QueueTransaction) => Promise<T>, options: { sync: boolean }): Promise<{ result: T; audit: AuditEntry[] }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ run: job, sync: options.sync, resolve, reject } as Job<unknown>);
      this.draining ??= this.drain();
    });
  }

  /** Continues the audit chain from `head` (after an import wrote the log underneath; only while idle). */
  resume(head: AuditHead): void {
    if (this.draining) throw new Error('the write queue is not idle');
    this.head = head;
  }

  /** Resolves when every queued job has finished. */
  async idle(): Promise<void> {
    await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const round = this.waiting.splice(0, this.maxRound);
        await this.runRound(round);
      }
    } finally {
      this.draining = undefined;
    }
  }

  private async runRound(round: Job<unknown>[]): Promise<void> {
    const overlay = new Map<string, string | null>();
    const batch: WriteOp[] = [];
    let head = this.head;
    let sync = false;
    const succeeded: { job: Job<unknown>; result: unknown; audit: AuditEntry[] }[] = [];
    for (const job of round) {
      const tx = new QueueTransaction(this.store, overlay);
      let result: unknown;
      try {
        result = await job.run(tx);
      } catch (error) {
        job.reject(error);
        continue;
      }
      const audit: AuditEntry[] = [];
      for (const event of tx.events) {
        const entry = sealAuditEntry(event, head.seq + 1, this.now().toISOString(), head.hash);
        head = { seq: entry.seq, hash: entry.hash };
        audit.push(entry);
        tx.put(auditKey(entry.seq), JSON.stringify(entry));
        if (entry.deviceId) tx.put(`ad!${entry.deviceId}!${auditKey(entry.seq).slice(2)}`, '');
      }
      if (audit.length > 0) tx.put(AUDIT_HEAD_KEY, JSON.stringify(head));
      for (const op of tx.ops) {
        batch.push(op);
        overlay.set(op.key, op.type === 'put' ? op.value : null);
      }
      sync ||= job.sync;
      succeeded.push({ job, result, audit });
    }
    if (succeeded.length === 0) return;
    try {
      const started = performance.now();
      await this.store.batch(batch, { sync });
      this.onBatchWritten?.((performance.now() - started) / 1000);
    } catch (error) {
      for (const { job } of succeeded) job.reject(error);
      return;
    }
    this.head = head;
    for (const { job, result, audit } of succeeded) job.resolve({ result, audit });
  }
}
