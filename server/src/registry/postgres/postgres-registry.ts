import pg from 'pg';
import type { Logger } from 'pino';
import { auditEntryIntact, AUDIT_GENESIS } from '../audit-chain.ts';
import { readAuditPageFrom, type ScannedAuditEntry } from '../audit-page.ts';
import { RegistryError } from '../errors.ts';
import {
  allowListBatch,
  batchAlreadyImported,
  batchImportAudit,
  checkIssuance,
  markedCertificate,
  singleActionOutcome,
  stateChangeRequest,
  credentialRecordedAudit,
  credentialRevokedAudit,
  decideDeviceAction,
  deviceActionAudit,
  planCredentialRevocation,
  provisionedDevice,
  sortCredentials,
  trustAddedAudit,
  type BatchSummary,
} from '../rules.ts';
import type {
  AuditEntry,
  AuditEvent,
  AuditPage,
  AuditQuery,
  AuditVerification,
  BatchImport,
  CertificateRecord,
  CredentialKind,
  CredentialRecord,
  CredentialRevocation,
  DeviceActionRequest,
  DeviceActionResult,
  DeviceChange,
  DeviceEventRecord,
  DeviceQuery,
  DeviceRecord,
  IssuanceCommit,
  PresenceRecord,
  ProvisionBatch,
  Registry,
  RegistryRecord,
  RegistryStatus,
  DeviceState,
  StoredCrl,
  RevocationReason,
  StateChange,
  TrustRecord,
} from '../types.ts';
import { ChangeFeed } from './change-feed.ts';
import { POSTGRES_DEFAULTS } from './defaults.ts';
import { migrate, schemaVersion, type MigrationOutcome } from './migrate.ts';
import { SCHEMA_VERSION } from './schema.ts';
import { isUnavailable, toRegistryError } from './pg-errors.ts';
import { redactUrl } from '../registry-url.ts';
import { prepared } from './prepared.ts';
import { WriteRounds, type ChangeRow, type RoundOutcome, type RoundTransaction } from './write-rounds.ts';

/** Options of the PostgreSQL registry (config.json `registry`; docs/postgres.md). */
export interface PostgresRegistryOptions {
  readonly now?: () => Date;
  /** Observes the duration of every committed write round (metrics). */
  readonly onBatchWritten?: (seconds: number) => void;
  readonly logger?: Logger;
  /** Connections of the pool (the LISTEN connection is one more). */
  readonly poolSize?: number;
  /** How long to wait for a connection before answering "unavailable". */
  readonly connectTimeoutMs?: number;
  /** How long one statement may take before it fails as "unavailable". */
  readonly queryTimeoutMs?: number;
  /** Changes older than this are pruned (a process away longer replays the registry). */
  readonly changeRetentionHours?: number;
  /** Most jobs in one write round (one transaction). */
  readonly maxRound?: number;
  /**
   * Bring the schema up to date on open (the default). Off for a look that must change nothing
   * (`fleetgate registry status`): a database without the schema is then refused.
   */
  readonly migrate?: boolean;
}

/** How often each process prunes old changes. */
const PRUNE_INTERVAL_MS = 60 * 60_000;

/** Rows one read of a long scan (audit, verification, replay) takes at a time. */
const SCAN_PAGE = 1_000;

/** A device change as stored in `changes`. */
type DeviceChangePayload = DeviceChange;
/** A credential change as stored in `changes`. */
type CredentialChangePayload = CredentialRecord;

/**
 * The PostgreSQL implementation of {@link Registry}, shared by any number of fleetgate processes.
 * Writes of record go through {@link WriteRounds} (group commit under the `registry_head` row
 * lock); advisory writes (presence, broker history) go straight to the pool; every change reaches
 * every process's listeners through the {@link ChangeFeed}.
 */
export class PostgresRegistry implements Registry {
  private readonly listeners = new Set<(change: DeviceChange) => void>();
  private readonly trustListeners = new Set<() => void>();
  private readonly credentialListeners = new Set<(record: CredentialRecord) => void>();
  private closed = false;
  private readonly feed: ChangeFeed;
  private readonly pruneTimer: NodeJS.Timeout;

  private constructor(
    private readonly url: string,
    private readonly pool: pg.Pool,
    connection: pg.ClientConfig,
    changeSeq: number,
    private readonly rounds: WriteRounds,
    private readonly now: () => Date,
    private readonly options: PostgresRegistryOptions,
    private readonly migration: MigrationOutcome,
  ) {
    this.feed = new ChangeFeed(pool, connection, changeSeq, (change) => this.dispatch(change), () => this.replay(), options.logger);
    this.pruneTimer = setInterval(() => void this.pruneChanges(), PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
  }

  /** Connects to `url`, brings the schema up to date and starts following changes. */
  static async open(url: string, options: PostgresRegistryOptions = {}): Promise<PostgresRegistry> {
    const connection: pg.ClientConfig = {
      connectionString: url,
      connectionTimeoutMillis: options.connectTimeoutMs ?? POSTGRES_DEFAULTS.connectTimeoutMs,
      query_timeout: options.queryTimeoutMs ?? POSTGRES_DEFAULTS.queryTimeoutMs,
      keepAlive: true,
      // TCP keepalive probes after 10 s idle, not Linux's 2 h: a silently dropped connection is noticed.
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'fleetgate',
    };
    const pool = new pg.Pool({ ...connection, max: options.poolSize ?? POSTGRES_DEFAULTS.poolSize, idleTimeoutMillis: 10_000 });
    // An idle connection that the server closed (a restart) is reported here; the pool drops it
    // and the next query opens another. Without a listener the error would end the process.
    pool.on('error', (error) => options.logger?.warn({ err: error }, 'an idle registry database connection failed'));
    try {
      const migration = options.migrate === false ? await currentSchema(pool, url) : await migrate(pool);
      const head = await pool.query<{ change_seq: string }>('SELECT change_seq FROM registry_head WHERE id = 1');
      const now = options.now ?? (() => new Date());
      const rounds = new WriteRounds(pool, now, options.maxRound ?? POSTGRES_DEFAULTS.maxRound, options.onBatchWritten);
      const registry = new PostgresRegistry(url, pool, connection, Number(head.rows[0]?.change_seq ?? 0), rounds, now, options, migration);
      await registry.feed.start();
      await registry.pruneChanges();
      return registry;
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw toRegistryError(error, 'opening');
    }
  }

  /** The schema version of the database (after the migrations this open applied). */
  get schemaVersion(): number {
    return this.migration.to;
  }

  /** The schema version the database had before this open (0: it was empty). */
  get migratedFrom(): number {
    return this.migration.from;
  }

  /** Whether the change feed's connection is up (a process not listening may miss changes until it reconnects). */
  get following(): boolean {
    return this.feed.connected;
  }

  private ensureOpen(): void {
    if (this.closed) throw new RegistryError('REGISTRY_CLOSED', 'the registry is closed');
  }

  /**
   * A read on the pool, its failure as a RegistryError. `prepare`: constant SQL on a hot path
   * (every enrollment, every renewal) runs as a prepared statement ({@link prepared}).
   */
  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[], doing: string, prepare = false): Promise<R[]> {
    this.ensureOpen();
    try {
      return (await this.pool.query<R>(prepare ? prepared(sql, params) : { text: sql, values: params })).rows;
    } catch (error) {
      throw toRegistryError(error, doing);
    }
  }

  /** Runs a job in a write round; once committed, delivers its changes to this process's listeners. */
  private async write<T>(job: (tx: RoundTransaction) => Promise<T>): Promise<RoundOutcome<T>> {
    this.ensureOpen();
    const outcome = await this.rounds.run(job);
    await this.feed.committed(outcome.changes).catch((error: unknown) => this.options.logger?.warn({ err: error }, 'reading registry changes failed'));
    return outcome;
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const rows = await this.query<{ record: DeviceRecord }>('SELECT record FROM devices WHERE id = $1', [id], 'reading a device', true);
    return rows[0]?.record;
  }

  async getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const rows = await this.query<{ record: CertificateRecord }>('SELECT record FROM certificates WHERE serial = $1', [serial], 'reading a certificate', true);
    return rows[0]?.record;
  }

  async listDevices(query: DeviceQuery = {}): Promise<DeviceRecord[]> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const where = (condition: (placeholder: string) => string, value: unknown): void => {
      params.push(value);
      conditions.push(condition(`$${params.length}`));
    };
    const descending = query.order === 'desc';
    if (query.after !== undefined) where((p) => `id ${descending ? '<' : '>'} ${p}`, query.after);
    // A range on the primary key (COLLATE "C", byte order) rather than LIKE, whose "_" is a wildcard:
    // no id has a byte above 0x7e, so prefix + "\x7f" bounds every id with the prefix.
    if (query.prefix !== undefined && query.prefix !== '') {
      where((p) => `id >= ${p}`, query.prefix);
      where((p) => `id < ${p}`, `${query.prefix}\x7f`);
    }
    if (query.state !== undefined) where((p) => `state = ${p}`, query.state);
    if (query.model !== undefined) where((p) => `model = ${p}`, query.model);
    if (query.expiresBefore !== undefined) {
      const before = Date.parse(query.expiresBefore);
      // An unparseable bound matches nothing, as in the LevelDB registry (NaN compares false).
      if (Number.isNaN(before)) return [];
      where((p) => `cert_not_after <> '' AND cert_not_after < ${p}`, new Date(before).toISOString());
    }
    let sql = `SELECT record FROM devices${conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : ''} ORDER BY id${descending ? ' DESC' : ''}`;
    if (query.limit !== undefined && Number.isFinite(query.limit)) sql += ` LIMIT ${Math.max(0, Math.floor(query.limit))}`;
    return (await this.query<{ record: DeviceRecord }>(sql, params, 'listing devices')).map((row) => row.record);
  }

  async listCertificates(deviceId: string): Promise<CertificateRecord[]> {
    const rows = await this.query<{ record: CertificateRecord }>('SELECT record FROM certificates WHERE device_id = $1 ORDER BY issued_at DESC, serial DESC', [deviceId], 'listing certificates');
    return rows.map((row) => row.record);
  }

  async revokedSerials(): Promise<Set<string>> {
    const rows = await this.query<{ serial: string }>("SELECT serial FROM certificates WHERE status = 'revoked'", [], 'listing revoked serials');
    return new Set(rows.map((row) => row.serial));
  }

  async commitIssuance(commit: IssuanceCommit): Promise<void> {
    await this.write(async (tx) => {
      const [stored] = await tx.read<{ record: DeviceRecord }>('SELECT record FROM devices WHERE id = $1', [commit.device.id]);
      checkIssuance(stored?.record, commit);
      const inserted = await tx.write(
        'INSERT INTO certificates (serial, device_id, issued_at, status, record) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (serial) DO NOTHING RETURNING serial',
        [commit.certificate.serial, commit.certificate.deviceId, commit.certificate.issuedAt, commit.certificate.status, JSON.stringify(commit.certificate)],
      );
      if (inserted.length === 0) throw new RegistryError('REGISTRY_CONFLICT', `serial ${commit.certificate.serial} is taken`);
      await this.putDevice(tx, commit.device);
      const revokedSerials: string[] = [];
      if (commit.previous && (await this.markCertificate(tx, commit.previous.serial, commit.previous.status, commit.previous.reason))) {
        revokedSerials.push(commit.previous.serial);
      }
      tx.audit(commit.audit);
      tx.change('device', { device: commit.device, revokedSerials } satisfies DeviceChangePayload);
    });
  }

  private async putDevice(tx: RoundTransaction, device: DeviceRecord): Promise<void> {
    await tx.write(
      `INSERT INTO devices (id, state, model, cert_not_after, record) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, model = EXCLUDED.model, cert_not_after = EXCLUDED.cert_not_after, record = EXCLUDED.record`,
      [device.id, device.state, device.model, device.certNotAfter, JSON.stringify(device)],
    );
  }

  /** Marks a certificate superseded or revoked; true when this revoked it. */
  private async markCertificate(tx: RoundTransaction, serial: string, status: 'superseded' | 'revoked', reason: RevocationReason): Promise<boolean> {
    const [row] = await tx.read<{ record: CertificateRecord }>('SELECT record FROM certificates WHERE serial = $1', [serial]);
    const marked = row === undefined ? undefined : markedCertificate(row.record, status, reason, this.now());
    if (!marked) return false;
    await tx.write('UPDATE certificates SET status = $2, record = $3 WHERE serial = $1', [serial, status, JSON.stringify(marked.record)]);
    if (marked.audit) tx.audit(marked.audit);
    return marked.audit !== undefined;
  }

  async changeState(change: StateChange): Promise<DeviceRecord> {
    return singleActionOutcome(await this.applyDeviceActions([stateChangeRequest(change)], { allOrNothing: true }), change.deviceId);
  }

  async resetDevice(deviceId: string, actor: string): Promise<DeviceRecord> {
    return singleActionOutcome(await this.applyDeviceActions([{ deviceId, action: 'reset', actor }], { allOrNothing: true }), deviceId);
  }

  async applyDeviceActions(actions: readonly DeviceActionRequest[], options: { readonly allOrNothing: boolean }): Promise<DeviceActionResult[]> {
    const { result } = await this.write(async (tx) => {
      // Pass 1: decide every action against the device as it is (or as an earlier action of this
      // call leaves it). The round holds the registry_head lock: no other process writes meanwhile.
      const ids = [...new Set(actions.map((request) => request.deviceId))];
      const stored = new Map((await tx.read<{ record: DeviceRecord }>('SELECT record FROM devices WHERE id = ANY($1::text[])', [ids])).map((row) => [row.record.id, row.record]));
      const planned = new Map<string, DeviceRecord>();
      const decisions: { request: DeviceActionRequest; before?: DeviceRecord; result: DeviceActionResult }[] = [];
      for (const request of actions) {
        const before = planned.get(request.deviceId) ?? stored.get(request.deviceId);
        const result = decideDeviceAction(request, before, this.now());
        if (result.status === 'changed') planned.set(request.deviceId, result.device);
        decisions.push({ request, before, result });
      }
      if (options.allOrNothing && decisions.some((decision) => decision.result.status === 'refused')) {
        return decisions.map(({ result }) => (result.status === 'changed' ? { ...result, status: 'skipped' as const } : result));
      }
      // Pass 2: write the changes, each audited once.
      for (const { request, before, result } of decisions) {
        if (result.status !== 'changed' || !before) continue;
        await this.putDevice(tx, result.device);
        const revokedSerials: string[] = [];
        if (request.action === 'revoke') {
          // Every certificate of the device still valid is revoked, superseded ones included.
          const serials = new Set(before.certSerial === '' ? [] : [before.certSerial]);
          for (const row of await tx.read<{ serial: string }>("SELECT serial FROM certificates WHERE device_id = $1 AND status <> 'revoked'", [before.id])) serials.add(row.serial);
          for (const serial of serials) {
            if (await this.markCertificate(tx, serial, 'revoked', request.revocationReason ?? 'unspecified')) revokedSerials.push(serial);
          }
        }
        tx.audit(deviceActionAudit(request, before));
        tx.change('device', { device: result.device, revokedSerials } satisfies DeviceChangePayload);
      }
      return decisions.map(({ result }) => result);
    });
    return result;
  }

  async audit(event: AuditEvent): Promise<AuditEntry> {
    const { audit } = await this.write(async (tx) => tx.audit(event));
    return audit[0] as AuditEntry;
  }

  async readAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return (await this.readAuditPage(query)).entries;
  }

  async readAuditPage(query: AuditQuery = {}): Promise<AuditPage> {
    // The head first: every entry up to it is committed (entries commit with the head they move).
    const head = await this.auditHead();
    return readAuditPageFrom(this.scanAudit(query, head.seq), head.seq, query);
  }

  /** The entries of the query's sequence range (of its device, if it names one), page by page. */
  private async *scanAudit(query: AuditQuery, head: number): AsyncGenerator<ScannedAuditEntry> {
    const newest = query.order === 'newest';
    let lower = query.after ?? 0;
    let upper = Math.min(query.before ?? head + 1, head + 1);
    const device = query.deviceId;
    for (;;) {
      const rows = await this.query<{ seq: string; entry: AuditEntry }>(
        `SELECT seq, entry FROM audit WHERE seq > $1 AND seq < $2${device !== undefined ? ' AND device_id = $4' : ''} ORDER BY seq ${newest ? 'DESC' : 'ASC'} LIMIT $3`,
        device !== undefined ? [lower, upper, SCAN_PAGE, device] : [lower, upper, SCAN_PAGE],
        'reading the audit log',
      );
      for (const row of rows) yield { seq: Number(row.seq), entry: row.entry };
      const last = rows.at(-1);
      if (!last || rows.length < SCAN_PAGE) return;
      if (newest) upper = Number(last.seq);
      else lower = Number(last.seq);
    }
  }

  private async auditHead(): Promise<{ seq: number; hash: string }> {
    const [row] = await this.query<{ audit_seq: string; audit_hash: string }>('SELECT audit_seq, audit_hash FROM registry_head WHERE id = 1', [], 'reading the audit head');
    return { seq: Number(row?.audit_seq ?? 0), hash: row?.audit_hash ?? AUDIT_GENESIS };
  }

  async verifyAudit(): Promise<AuditVerification> {
    const head = await this.auditHead();
    let expectedSeq = 1;
    let prevHash = AUDIT_GENESIS;
    for await (const { seq, entry } of this.scanAudit({}, head.seq)) {
      if (!entry || seq !== expectedSeq || entry.seq !== seq) return { ok: false, entries: expectedSeq - 1, brokenAt: expectedSeq, reason: `entry ${expectedSeq} is missing` };
      if (entry.prevHash !== prevHash) return { ok: false, entries: expectedSeq - 1, brokenAt: seq, reason: `entry ${seq} does not follow entry ${seq - 1}` };
      if (!auditEntryIntact(entry)) return { ok: false, entries: expectedSeq - 1, brokenAt: seq, reason: `entry ${seq} was altered` };
      prevHash = entry.hash;
      expectedSeq++;
    }
    if (head.seq !== expectedSeq - 1 || head.hash !== prevHash) {
      return { ok: false, entries: expectedSeq - 1, brokenAt: expectedSeq, reason: `the log ends at entry ${expectedSeq - 1} but the head says ${head.seq}` };
    }
    return { ok: true, entries: expectedSeq - 1, head: prevHash };
  }

  async revokedCertificates(): Promise<CertificateRecord[]> {
    const rows = await this.query<{ record: CertificateRecord }>("SELECT record FROM certificates WHERE status = 'revoked' ORDER BY serial", [], 'listing revoked certificates');
    return rows.map((row) => row.record);
  }

  async nextCrlNumber(): Promise<bigint> {
    const { result } = await this.write(async (tx) => {
      const [row] = await tx.write<{ crl_number: string }>('UPDATE registry_head SET crl_number = crl_number + 1 WHERE id = 1 RETURNING crl_number');
      return BigInt(row?.crl_number ?? '0');
    });
    return result;
  }

  async saveCrl(crl: StoredCrl): Promise<void> {
    // Not a write of record (no audit, no change): the row only ever moves to a higher number.
    await this.query(
      'INSERT INTO crl (id, number, record) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET number = EXCLUDED.number, record = EXCLUDED.record WHERE crl.number < EXCLUDED.number',
      [crl.number, JSON.stringify(crl)],
      'saving the CRL',
    );
  }

  async currentCrl(): Promise<StoredCrl | undefined> {
    const rows = await this.query<{ record: StoredCrl }>('SELECT record FROM crl WHERE id = 1', [], 'reading the CRL');
    return rows[0]?.record;
  }

  async putTrust(trust: TrustRecord): Promise<void> {
    await this.write(async (tx) => {
      await tx.write('INSERT INTO trusts (name, record) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record', [trust.name, JSON.stringify(trust)]);
      // The ids of an allow-list are provisioned under this trust: listed, and revocable before
      // their first enrollment like the ids of a `bootstrap issue` batch.
      const allowList = allowListBatch(trust);
      if (allowList) await this.provision(tx, allowList, trust.actor);
      tx.audit(trustAddedAudit(trust));
      tx.change('trust', { name: trust.name });
    });
  }

  async deleteTrust(name: string, actor: string): Promise<boolean> {
    const { result } = await this.write(async (tx) => {
      const [known] = await tx.read<{ name: string }>('SELECT name FROM trusts WHERE name = $1', [name]);
      if (!known) return false;
      await tx.write('DELETE FROM trusts WHERE name = $1', [name]);
      tx.audit({ type: 'trust-removed', detail: name, actor });
      tx.change('trust', { name });
      return true;
    });
    return result;
  }

  async listTrusts(): Promise<TrustRecord[]> {
    return (await this.query<{ record: TrustRecord }>('SELECT record FROM trusts ORDER BY name', [], 'listing trusts')).map((row) => row.record);
  }

  onTrustChange(listener: () => void): () => void {
    this.trustListeners.add(listener);
    return () => this.trustListeners.delete(listener);
  }

  async importBatch(batch: ProvisionBatch, actor: string): Promise<BatchImport> {
    const { result } = await this.write((tx) => this.provision(tx, batch, actor));
    return result;
  }

  /** Records a batch's unknown ids as provisioned, inside a write round. */
  private async provision(tx: RoundTransaction, batch: ProvisionBatch, actor: string): Promise<BatchImport> {
    const [known] = await tx.read<{ record: BatchSummary }>('SELECT record FROM batches WHERE id = $1', [batch.id]);
    if (batchAlreadyImported(known?.record, batch)) return { batch: batch.id, added: 0, existing: batch.devices.length };
    const ids = batch.devices.map((entry) => entry.id);
    const present = new Set((await tx.read<{ id: string }>('SELECT id FROM devices WHERE id = ANY($1::text[])', [ids])).map((row) => row.id));
    const timestamp = this.now().toISOString();
    // Known ids stay as they are: imported before, enrolled, revoked or reset meanwhile.
    const fresh = new Map<string, DeviceRecord>();
    for (const entry of batch.devices) if (!present.has(entry.id) && !fresh.has(entry.id)) fresh.set(entry.id, provisionedDevice(batch, entry, timestamp));
    const added = fresh.size;
    const existing = batch.devices.length - added;
    // A batch imported again with nothing new writes nothing, not even an audit entry.
    if (known !== undefined && added === 0) return { batch: batch.id, added, existing };
    if (added > 0) {
      const records = [...fresh.values()];
      // Every process learns of the new ids (its device census, its broker's view).
      for (const record of records) tx.change('device', { device: record, revokedSerials: [] } satisfies DeviceChangePayload);
      await tx.write('INSERT INTO devices (id, state, model, cert_not_after, record) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::json[])', [
        records.map((record) => record.id),
        records.map((record) => record.state),
        records.map((record) => record.model),
        records.map((record) => record.certNotAfter),
        records.map((record) => JSON.stringify(record)),
      ]);
    }
    const summary: BatchSummary = { id: batch.id, model: batch.model, trust: batch.trust, issuedAt: batch.issuedAt, count: batch.devices.length, importedAt: timestamp };
    await tx.write('INSERT INTO batches (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record', [batch.id, JSON.stringify(summary)]);
    tx.audit(batchImportAudit(batch, added, existing, actor));
    return { batch: batch.id, added, existing };
  }

  async recordCredential(record: CredentialRecord, actor: string): Promise<CredentialRecord> {
    const { result } = await this.write(async (tx) => {
      const [stored] = await tx.read<{ record: CredentialRecord }>('SELECT record FROM credentials WHERE serial = $1', [record.serial]);
      if (stored) return stored.record;
      await tx.write('INSERT INTO credentials (serial, kind, name, record) VALUES ($1, $2, $3, $4)', [record.serial, record.kind, record.name, JSON.stringify(record)]);
      const audit = credentialRecordedAudit(record, actor);
      if (audit) tx.audit(audit);
      tx.change('credential', record satisfies CredentialChangePayload);
      return record;
    });
    return result;
  }

  async getCredential(serial: string): Promise<CredentialRecord | undefined> {
    const rows = await this.query<{ record: CredentialRecord }>('SELECT record FROM credentials WHERE serial = $1', [serial], 'reading a credential');
    return rows[0]?.record;
  }

  async listCredentials(kind?: CredentialKind): Promise<CredentialRecord[]> {
    const rows = await this.query<{ record: CredentialRecord }>(
      kind === undefined ? 'SELECT record FROM credentials' : 'SELECT record FROM credentials WHERE kind = $1',
      kind === undefined ? [] : [kind],
      'listing credentials',
    );
    return sortCredentials(rows.map((row) => row.record));
  }

  async revokeCredentials(revocation: CredentialRevocation): Promise<CredentialRecord[]> {
    const { result } = await this.write(async (tx) => {
      const all = (await tx.read<{ record: CredentialRecord }>('SELECT record FROM credentials WHERE kind = $1', [revocation.kind])).map((row) => row.record);
      const plan = planCredentialRevocation(all, revocation, this.now());
      for (const record of plan.changed) {
        await tx.write('UPDATE credentials SET record = $2 WHERE serial = $1', [record.serial, JSON.stringify(record)]);
        tx.audit(credentialRevokedAudit(record, revocation.actor));
        tx.change('credential', record satisfies CredentialChangePayload);
      }
      return plan.out;
    });
    return result;
  }

  onCredentialChange(listener: (record: CredentialRecord) => void): () => void {
    this.credentialListeners.add(listener);
    return () => this.credentialListeners.delete(listener);
  }

  async recordPresence(updates: readonly PresenceRecord[]): Promise<void> {
    if (updates.length === 0) return;
    // One row per device (the last update wins): an upsert may not touch a row twice.
    const latest = [...new Map(updates.map((update) => [update.deviceId, update])).values()];
    await this.query(
      // A disconnect never overwrites a connection another node recorded meanwhile (a takeover),
      // unless the disconnected connection began after it (that node died without a word).
      `INSERT INTO presence (device_id, record) SELECT * FROM unnest($1::text[], $2::json[]) ON CONFLICT (device_id) DO UPDATE SET record = EXCLUDED.record
       WHERE (EXCLUDED.record->>'connected')::boolean OR NOT (presence.record->>'connected')::boolean OR (presence.record->>'node') IS NULL OR (presence.record->>'node') = (EXCLUDED.record->>'node')
          OR (EXCLUDED.record->>'connectedAt') COLLATE "C" > (presence.record->>'connectedAt') COLLATE "C"`,
      [latest.map((update) => update.deviceId), latest.map((update) => JSON.stringify(update))],
      'writing presence',
    );
  }

  async getPresence(deviceId: string): Promise<PresenceRecord | undefined> {
    const rows = await this.query<{ record: PresenceRecord }>('SELECT record FROM presence WHERE device_id = $1', [deviceId], 'reading presence');
    return rows[0]?.record;
  }

  async getPresences(deviceIds: readonly string[]): Promise<(PresenceRecord | undefined)[]> {
    if (deviceIds.length === 0) return [];
    const rows = await this.query<{ device_id: string; record: PresenceRecord }>('SELECT device_id, record FROM presence WHERE device_id = ANY($1::text[])', [[...deviceIds]], 'reading presence');
    const byDevice = new Map(rows.map((row) => [row.device_id, row.record]));
    return deviceIds.map((deviceId) => byDevice.get(deviceId));
  }

  async recordDeviceEvents(events: readonly DeviceEventRecord[], keepPerDevice: number): Promise<void> {
    this.ensureOpen();
    if (events.length === 0) return;
    const key = (event: DeviceEventRecord): string => JSON.stringify([event.deviceId, event.first, event.kind, event.code]);
    const latest = [...new Map(events.map((event) => [key(event), event])).values()];
    const devices = [...new Set(latest.map((event) => event.deviceId))];
    const client = await this.pool.connect().catch((error: unknown) => {
      throw toRegistryError(error, 'writing device history');
    });
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO device_events (device_id, first, kind, code, record) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::json[])
         ON CONFLICT (device_id, first, kind, code) DO UPDATE SET record = EXCLUDED.record`,
        [latest.map((event) => event.deviceId), latest.map((event) => event.first), latest.map((event) => event.kind), latest.map((event) => event.code), latest.map((event) => JSON.stringify(event))],
      );
      // Each device keeps its newest entries (by first occurrence, as the LevelDB keys sort).
      await client.query(
        `DELETE FROM device_events AS e USING (
           SELECT device_id, first, kind, code, row_number() OVER (PARTITION BY device_id ORDER BY first DESC, kind DESC, code DESC) AS rank
           FROM device_events WHERE device_id = ANY($1::text[])
         ) AS ranked
         WHERE ranked.rank > $2 AND e.device_id = ranked.device_id AND e.first = ranked.first AND e.kind = ranked.kind AND e.code = ranked.code`,
        [devices, keepPerDevice],
      );
      await client.query('COMMIT');
    } catch (error) {
      broken = error instanceof Error ? error : undefined;
      await client.query('ROLLBACK').catch(() => undefined);
      throw toRegistryError(error, 'writing device history');
    } finally {
      client.release(broken);
    }
  }

  async listDeviceEvents(deviceId: string, limit = Number.POSITIVE_INFINITY): Promise<DeviceEventRecord[]> {
    const bounded = Number.isFinite(limit) ? ` LIMIT ${Math.max(0, Math.floor(limit))}` : '';
    const rows = await this.query<{ record: DeviceEventRecord }>(`SELECT record FROM device_events WHERE device_id = $1 ORDER BY first DESC, kind DESC, code DESC${bounded}`, [deviceId], 'reading device history');
    return rows.map((row) => row.record);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1', [], 'ping');
  }

  onDeviceChange(listener: (change: DeviceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Hands one change, from this process or another, to the listeners of its kind. */
  private dispatch(change: ChangeRow): void {
    if (change.kind === 'device') for (const listener of this.listeners) listener(change.payload as DeviceChangePayload);
    else if (change.kind === 'trust') for (const listener of this.trustListeners) listener();
    else for (const listener of this.credentialListeners) listener(change.payload as CredentialChangePayload);
  }

  /**
   * Tells the listeners the whole state, as if every record had just changed: for a process that
   * was away longer than the changes are kept.
   */
  private async replay(): Promise<void> {
    const revoked = new Map<string, string[]>();
    for (const record of await this.revokedCertificates()) revoked.set(record.deviceId, [...(revoked.get(record.deviceId) ?? []), record.serial]);
    let after: string | undefined;
    for (;;) {
      const page = await this.listDevices({ after, limit: SCAN_PAGE });
      for (const device of page) for (const listener of this.listeners) listener({ device, revokedSerials: revoked.get(device.id) ?? [] });
      if (page.length < SCAN_PAGE) break;
      after = page.at(-1)?.id;
    }
    for (const listener of this.trustListeners) listener();
    for (const record of await this.listCredentials()) for (const listener of this.credentialListeners) listener(record);
  }

  /** Deletes changes older than the retention; the newest stays, so a gap can be told from "nothing new". */
  private async pruneChanges(): Promise<void> {
    const hours = this.options.changeRetentionHours ?? POSTGRES_DEFAULTS.changeRetentionHours;
    await this.pool
      .query("DELETE FROM changes WHERE created_at < now() - $1::float8 * interval '1 hour' AND seq < (SELECT max(seq) FROM changes)", [hours])
      .catch((error: unknown) => this.options.logger?.warn({ err: error }, 'pruning registry changes failed'));
  }

  async status(): Promise<RegistryStatus> {
    const [row] = await this.query<{ devices: Record<string, number> | null; certificates: number; trusts: number; credentials: number; audit_seq: string; audit_hash: string; crl_number: string; version: number }>(
      `SELECT (SELECT json_object_agg(state, n) FROM (SELECT state, count(*)::int AS n FROM devices GROUP BY state) AS s) AS devices,
              (SELECT count(*)::int FROM certificates) AS certificates,
              (SELECT count(*)::int FROM trusts) AS trusts,
              (SELECT count(*)::int FROM credentials) AS credentials,
              h.audit_seq, h.audit_hash, h.crl_number,
              (SELECT max(version) FROM schema_migrations) AS version
       FROM registry_head AS h WHERE h.id = 1`,
      [],
      'reading the status',
    );
    const devices: Record<DeviceState, number> = { provisioned: 0, enrolled: 0, disabled: 0, revoked: 0 };
    for (const [state, count] of Object.entries(row?.devices ?? {})) if (state in devices) devices[state as DeviceState] = count;
    return {
      engine: 'postgres',
      location: redactUrl(this.url),
      schemaVersion: row?.version ?? 0,
      devices,
      certificates: row?.certificates ?? 0,
      trusts: row?.trusts ?? 0,
      credentials: row?.credentials ?? 0,
      audit: { entries: Number(row?.audit_seq ?? 0), head: row?.audit_hash ?? AUDIT_GENESIS },
      crlNumber: row?.crl_number ?? '0',
    };
  }

  /**
   * Every record from one REPEATABLE READ transaction: a consistent snapshot while other
   * processes go on writing. Tables are read through cursors, a page at a time.
   */
  async *exportRecords(): AsyncGenerator<RegistryRecord> {
    this.ensureOpen();
    const client = await this.pool.connect().catch((error: unknown) => {
      throw toRegistryError(error, 'exporting');
    });
    let broken: Error | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // A cursor per table: each page continues where the last ended (OFFSET would re-read).
      let cursors = 0;
      const rows = async function* <R extends pg.QueryResultRow>(sql: string): AsyncGenerator<R> {
        const name = `export_${++cursors}`;
        await client.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${sql}`);
        for (;;) {
          const page = (await client.query<R>(`FETCH ${SCAN_PAGE} FROM ${name}`)).rows;
          yield* page;
          if (page.length < SCAN_PAGE) break;
        }
        await client.query(`CLOSE ${name}`);
      };
      for await (const row of rows<{ record: TrustRecord }>('SELECT record FROM trusts ORDER BY name')) yield { kind: 'trust', record: row.record };
      for await (const row of rows<{ record: BatchSummary }>('SELECT record FROM batches ORDER BY id')) yield { kind: 'batch', record: row.record };
      for await (const row of rows<{ record: CredentialRecord }>('SELECT record FROM credentials ORDER BY serial')) yield { kind: 'credential', record: row.record };
      for await (const row of rows<{ record: DeviceRecord }>('SELECT record FROM devices ORDER BY id')) yield { kind: 'device', record: row.record };
      for await (const row of rows<{ record: CertificateRecord }>('SELECT record FROM certificates ORDER BY serial')) yield { kind: 'certificate', record: row.record };
      for await (const row of rows<{ record: PresenceRecord }>('SELECT record FROM presence ORDER BY device_id')) yield { kind: 'presence', record: row.record };
      for await (const row of rows<{ record: DeviceEventRecord }>('SELECT record FROM device_events ORDER BY device_id, first, kind, code')) yield { kind: 'device-event', record: row.record };
      for await (const row of rows<{ entry: AuditEntry }>('SELECT entry FROM audit ORDER BY seq')) yield { kind: 'audit', record: row.entry };
      const [head] = (await client.query<{ crl_number: string }>('SELECT crl_number FROM registry_head WHERE id = 1')).rows;
      yield { kind: 'crl-number', value: head?.crl_number ?? '0' };
    } catch (error) {
      broken = isUnavailable(error) ? (error as Error) : undefined;
      await client.query('ROLLBACK').catch(() => undefined);
      throw toRegistryError(error, 'exporting');
    } finally {
      // Also when the reader stops early: the snapshot transaction ends before the connection is reused.
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      client.release(broken);
    }
  }

  async importRecords(records: AsyncIterable<RegistryRecord>): Promise<void> {
    this.ensureOpen();
    const client = await this.pool.connect().catch((error: unknown) => {
      throw toRegistryError(error, 'importing');
    });
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      // The head lock keeps every other process's writes out until the import commits.
      const [head] = (await client.query<{ audit_seq: string }>('SELECT audit_seq FROM registry_head WHERE id = 1 FOR UPDATE')).rows;
      const [{ devices } = { devices: 0 }] = (await client.query<{ devices: number }>('SELECT count(*)::int AS devices FROM devices')).rows;
      if (Number(head?.audit_seq ?? 0) > 0 || devices > 0) throw new RegistryError('REGISTRY_NOT_EMPTY', `the registry at ${redactUrl(this.url)} already holds devices or audit entries`);
      const importer = new RowImporter(client);
      let auditSeq = 0;
      let auditHash = AUDIT_GENESIS;
      let crlNumber = '0';
      for await (const entry of records) {
        switch (entry.kind) {
          case 'trust':
            await importer.add('trusts', [entry.record.name, JSON.stringify(entry.record)]);
            break;
          case 'batch':
            await importer.add('batches', [entry.record.id, JSON.stringify(entry.record)]);
            break;
          case 'credential':
            await importer.add('credentials', [entry.record.serial, entry.record.kind, entry.record.name, JSON.stringify(entry.record)]);
            break;
          case 'device':
            await importer.add('devices', [entry.record.id, entry.record.state, entry.record.model, entry.record.certNotAfter, JSON.stringify(entry.record)]);
            break;
          case 'certificate':
            await importer.add('certificates', [entry.record.serial, entry.record.deviceId, entry.record.issuedAt, entry.record.status, JSON.stringify(entry.record)]);
            break;
          case 'presence':
            await importer.add('presence', [entry.record.deviceId, JSON.stringify(entry.record)]);
            break;
          case 'device-event':
            await importer.add('device_events', [entry.record.deviceId, entry.record.first, entry.record.kind, entry.record.code, JSON.stringify(entry.record)]);
            break;
          case 'audit':
            await importer.add('audit', [entry.record.seq, entry.record.deviceId ?? null, JSON.stringify(entry.record)]);
            auditSeq = entry.record.seq;
            auditHash = entry.record.hash;
            break;
          case 'crl-number':
            crlNumber = entry.value;
            break;
        }
      }
      await importer.flush();
      await client.query('UPDATE registry_head SET audit_seq = $1, audit_hash = $2, crl_number = $3 WHERE id = 1', [auditSeq, auditHash, crlNumber]);
      await client.query('COMMIT');
    } catch (error) {
      broken = isUnavailable(error) ? (error as Error) : undefined;
      await client.query('ROLLBACK').catch(() => undefined);
      throw toRegistryError(error, 'importing');
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pruneTimer);
    await this.rounds.idle();
    await this.feed.close();
    await this.pool.end();
  }
}

/** Columns and their array types of each table an import fills, in the order the rows give them. */
const IMPORT_COLUMNS = {
  trusts: [['name', 'text'], ['record', 'json']],
  batches: [['id', 'text'], ['record', 'json']],
  credentials: [['serial', 'text'], ['kind', 'text'], ['name', 'text'], ['record', 'json']],
  devices: [['id', 'text'], ['state', 'text'], ['model', 'text'], ['cert_not_after', 'text'], ['record', 'json']],
  certificates: [['serial', 'text'], ['device_id', 'text'], ['issued_at', 'text'], ['status', 'text'], ['record', 'json']],
  presence: [['device_id', 'text'], ['record', 'json']],
  device_events: [['device_id', 'text'], ['first', 'text'], ['kind', 'text'], ['code', 'text'], ['record', 'json']],
  audit: [['seq', 'bigint'], ['device_id', 'text'], ['entry', 'json']],
} as const;

type ImportTable = keyof typeof IMPORT_COLUMNS;

/** Rows of an import, inserted a page at a time with one `unnest` per table. */
class RowImporter {
  private readonly pending = new Map<ImportTable, unknown[][]>();

  constructor(private readonly client: pg.PoolClient) {}

  async add(table: ImportTable, row: unknown[]): Promise<void> {
    const rows = this.pending.get(table) ?? [];
    rows.push(row);
    this.pending.set(table, rows);
    if (rows.length >= SCAN_PAGE) await this.insert(table);
  }

  async flush(): Promise<void> {
    for (const table of this.pending.keys()) await this.insert(table);
  }

  private async insert(table: ImportTable): Promise<void> {
    const rows = this.pending.get(table) ?? [];
    this.pending.set(table, []);
    if (rows.length === 0) return;
    const columns = IMPORT_COLUMNS[table];
    const arrays = columns.map((_, index) => rows.map((row) => row[index]));
    const unnest = columns.map(([, type], index) => `$${index + 1}::${type}[]`).join(', ');
    await this.client.query(`INSERT INTO ${table} (${columns.map(([name]) => name).join(', ')}) SELECT * FROM unnest(${unnest})`, arrays);
  }
}

/** The schema as it is, for an open that does not migrate: refused when there is none, or a newer one. */
async function currentSchema(pool: pg.Pool, url: string): Promise<MigrationOutcome> {
  const version = await schemaVersion(pool);
  if (version === 0) throw new RegistryError('REGISTRY_IO', `${redactUrl(url)} holds no fleetgate registry: run fleetgate init --registry URL first`);
  if (version > SCHEMA_VERSION) throw new RegistryError('REGISTRY_IO', `the registry database has schema version ${version}, newer than this fleetgate knows (${SCHEMA_VERSION}): upgrade fleetgate`);
  return { from: version, to: version };
}
