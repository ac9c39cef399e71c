import type pg from 'pg';
import { sealAuditEntry } from '../audit-chain.ts';
import type { AuditEntry, AuditEvent } from '../types.ts';
import { RegistryError } from '../errors.ts';
import { toRegistryError } from './pg-errors.ts';
import { prepared } from './prepared.ts';

/** A change to tell every process about (device, trust or credential), as stored in `changes`. */
export interface ChangeRow {
  readonly seq: number;
  readonly kind: ChangeKind;
  readonly payload: unknown;
}

export type ChangeKind = 'device' | 'trust' | 'credential';

/** The NOTIFY channel of committed changes; the payload is the last change number committed. */
export const CHANGE_CHANNEL = 'fleetgate_changes';

/**
 * What a job of a write round gets: reads and writes inside the round's transaction (a job sees
 * the writes of the jobs before it in the same round), and audit entries and changes to append.
 * Their SQL must be constant text: each runs as a prepared statement ({@link prepared}).
 */
export class RoundTransaction {
  readonly events: AuditEvent[] = [];
  readonly changes: { kind: ChangeKind; payload: unknown }[] = [];
  /** Whether the job has written: a job that fails after that spoils the round. */
  wrote = false;

  constructor(private readonly client: pg.PoolClient) {}

  async read<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.client.query<R>(prepared(sql, params))).rows;
  }

  /** Runs a statement that may write; returns the rows it returns (RETURNING). */
  async write<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    // Set before the statement: one that fails aborts the transaction, as a write would spoil it.
    this.wrote = true;
    return (await this.client.query<R>(prepared(sql, params))).rows;
  }

  audit(event: AuditEvent): void {
    this.events.push(event);
  }

  change(kind: ChangeKind, payload: unknown): void {
    this.changes.push({ kind, payload });
  }
}

interface Job<T> {
  readonly run: (tx: RoundTransaction) => Promise<T>;
  readonly resolve: (value: RoundOutcome<T>) => void;
  readonly reject: (error: unknown) => void;
}

/** What a job resolves with once its round committed. */
export interface RoundOutcome<T> {
  readonly result: T;
  readonly audit: AuditEntry[];
  readonly changes: ChangeRow[];
}

/** The head row as a round reads it under its lock. */
interface HeadRow {
  audit_seq: string;
  audit_hash: string;
  change_seq: string;
}

/**
 * The writer of the PostgreSQL registry: jobs that arrive while a round is being committed go
 * into the next round together, one transaction and one WAL flush for all of them (group commit,
 * as the LevelDB registry does with one fsync). Each round first locks the one `registry_head`
 * row: rounds of every process take turns, so the audit chain is sealed in commit order and stays
 * one strict chain, and change numbers are dense and committed in order.
 *
 * Jobs read and check first and refuse (throw a RegistryError) only before their first write. A
 * job that throws after writing, or whose statement failed (a unique serial taken by another
 * process, say), spoils the transaction: the round is
 * rolled back, that job refused, and the other jobs run again in a new round.
 */
export class WriteRounds {
  private waiting: Job<unknown>[] = [];
  private draining: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => Date,
    private readonly maxRound: number,
    private readonly onRoundWritten?: (seconds: number) => void,
  ) {}

  /** Runs `job` in a round; resolves once the round committed (durably: synchronous_commit). */
  run<T>(job: (tx: RoundTransaction) => Promise<T>): Promise<RoundOutcome<T>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ run: job, resolve, reject } as Job<unknown>);
      this.draining ??= this.drain();
    });
  }

  /** Resolves when every queued job has finished. */
  async idle(): Promise<void> {
    await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const round = this.waiting.splice(0, this.maxRound);
        const rerun = await this.runRound(round);
        this.waiting.unshift(...rerun);
      }
    } finally {
      this.draining = undefined;
    }
  }

  /** Runs one round; returns the jobs to run again (when one job spoiled the round). */
  private async runRound(round: Job<unknown>[]): Promise<Job<unknown>[]> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      const failure = toRegistryError(error, 'connecting');
      for (const job of round) job.reject(failure);
      return [];
    }
    let broken: unknown;
    try {
      const started = performance.now();
      await client.query('BEGIN');
      const head = (await client.query<HeadRow>(prepared('SELECT audit_seq, audit_hash, change_seq FROM registry_head WHERE id = 1 FOR UPDATE'))).rows[0];
      if (!head) throw new Error('registry_head has no row: the schema was not made by fleetgate');
      let auditSeq = Number(head.audit_seq);
      let auditHash = head.audit_hash;
      let changeSeq = Number(head.change_seq);
      const audit: AuditEntry[] = [];
      const changes: ChangeRow[] = [];
      const succeeded: { job: Job<unknown>; result: unknown; audit: AuditEntry[]; changes: ChangeRow[] }[] = [];
      for (const [index, job] of round.entries()) {
        const tx = new RoundTransaction(client);
        let result: unknown;
        try {
          result = await job.run(tx);
        } catch (error) {
          // A refusal decided before writing leaves the transaction as it was.
          if (!tx.wrote && error instanceof RegistryError) {
            job.reject(error);
            continue;
          }
          // Its writes (or a failed statement, which aborts the transaction) cannot be taken back
          // alone: roll the round back, refuse this job, run the others again.
          await client.query('ROLLBACK');
          job.reject(toRegistryError(error, 'writing'));
          return [...succeeded.map((entry) => entry.job), ...round.slice(index + 1)];
        }
        const jobAudit = tx.events.map((event) => {
          const entry = sealAuditEntry(event, auditSeq + 1, this.now().toISOString(), auditHash);
          auditSeq = entry.seq;
          auditHash = entry.hash;
          return entry;
        });
        const jobChanges = tx.changes.map((change) => ({ seq: ++changeSeq, ...change }));
        audit.push(...jobAudit);
        changes.push(...jobChanges);
        succeeded.push({ job, result, audit: jobAudit, changes: jobChanges });
      }
      if (succeeded.length === 0) {
        await client.query('ROLLBACK');
        return [];
      }
      if (audit.length > 0) {
        await client.query(
          prepared('INSERT INTO audit (seq, device_id, entry) SELECT * FROM unnest($1::bigint[], $2::text[], $3::json[])', [
            audit.map((entry) => entry.seq),
            audit.map((entry) => entry.deviceId ?? null),
            audit.map((entry) => JSON.stringify(entry)),
          ]),
        );
      }
      if (changes.length > 0) {
        await client.query(
          prepared('INSERT INTO changes (seq, kind, payload) SELECT * FROM unnest($1::bigint[], $2::text[], $3::json[])', [
            changes.map((change) => change.seq),
            changes.map((change) => change.kind),
            changes.map((change) => JSON.stringify(change.payload)),
          ]),
        );
        await client.query(prepared('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, String(changeSeq)]));
      }
      if (audit.length > 0 || changes.length > 0) {
        await client.query(prepared('UPDATE registry_head SET audit_seq = $1, audit_hash = $2, change_seq = $3 WHERE id = 1', [auditSeq, auditHash, changeSeq]));
      }
      await client.query('COMMIT');
      this.onRoundWritten?.((performance.now() - started) / 1000);
      for (const { job, result, audit: jobAudit, changes: jobChanges } of succeeded) job.resolve({ result, audit: jobAudit, changes: jobChanges });
      return [];
    } catch (error) {
      // The connection failed, or COMMIT did: nothing of the round is known to be written.
      broken = error;
      await client.query('ROLLBACK').catch(() => undefined);
      const failure = toRegistryError(error, 'committing');
      for (const job of round) job.reject(failure);
      return [];
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  }
}
