import { Level } from 'level';
import { auditEntryIntact, AUDIT_GENESIS } from '../audit-chain.ts';
import { RegistryError } from '../errors.ts';
import { readLevelAuditPage } from './audit-reader.ts';
import { DeviceRecordCache } from './device-cache.ts';
import { HistoryBounds } from './history-bounds.ts';
import type {
  AuditEntry,
  AuditEvent,
  AuditPage,
  AuditQuery,
  AuditVerification,
  BatchImport,
  CertificateRecord,
  DeviceActionRequest,
  DeviceActionResult,
  CredentialKind,
  CredentialRecord,
  CredentialRevocation,
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
  TrustRecord,
  StateChange,
} from '../types.ts';
import { AUDIT_HEAD_KEY, auditKey, WriteQueue, type AuditHead, type QueueTransaction, type WriteOp } from './write-queue.ts';
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

/*
 * Key layout (UTF-8 keys, JSON values):
 *   d!<deviceId>                 DeviceRecord
 *   c!<serial>                   CertificateRecord
 *   dc!<deviceId>!<issuedAt>!<serial>   index: a device's certificates in issue order
 *   r!<serial>                   index: revoked certificates
 *   a!<seq>                      AuditEntry (seq zero-padded to 12 digits)
 *   ad!<deviceId>!<seq>          index: a device's audit entries
 *   m!audit-head                 { seq, hash } of the last audit entry
 *   p!<deviceId>                 PresenceRecord
 *   t!<name>                     TrustRecord (trusted manufacturer CA)
 *   m!crl-number                 last cRLNumber issued
 *   m!crl                        StoredCrl: the newest CRL signed
 *   e!<deviceId>!<first>!<kind>!<code>   DeviceEventRecord (broker history, bounded per device)
 *   b!<batchId>                  BatchSummary (a provisioning batch, its ids are d! records)
 *   k!<serial>                   CredentialRecord (operator and service certificates)
 */
const deviceKey = (id: string): string => `d!${id}`;
const isDeviceKey = (key: string): boolean => key.startsWith('d!');
/** Device records kept in memory (device-cache.ts): ~0.5-1 MiB at a few hundred bytes each. */
const DEVICE_CACHE_ENTRIES = 2048;
/** Devices whose history bound is remembered (history-bounds.ts): about 10 MB at most. */
const HISTORY_BOUND_ENTRIES = 100_000;
const certKey = (serial: string): string => `c!${serial}`;

/**
 * The key range of a device listing: the id prefix narrows the range itself (ids are the keys, in
 * byte order), so a search reads only matching devices; `after` moves the near end, in either order.
 */
function deviceRange(query: DeviceQuery): { gt?: string; gte?: string; lt?: string; lte?: string; reverse: boolean } {
  const low = query.prefix ? deviceKey(query.prefix) : 'd!';
  // No id contains a byte above 0x7e (DEVICE_ID_PATTERN), so prefix + "\x7f" bounds every id with the prefix.
  const high = query.prefix ? `${deviceKey(query.prefix)}\x7f` : 'd"';
  if (query.order === 'desc') {
    const end = query.after !== undefined && deviceKey(query.after) < high ? deviceKey(query.after) : high;
    return { gte: low, lt: end, reverse: true };
  }
  return query.after !== undefined && deviceKey(query.after) >= low ? { gt: deviceKey(query.after), lt: high, reverse: false } : { gte: low, lt: high, reverse: false };
}
const deviceCertKey = (record: CertificateRecord): string => `dc!${record.deviceId}!${record.issuedAt}!${record.serial}`;
const revokedKey = (serial: string): string => `r!${serial}`;
const presenceKey = (id: string): string => `p!${id}`;
const trustKey = (name: string): string => `t!${name}`;
const deviceEventKey = (event: DeviceEventRecord): string => `e!${event.deviceId}!${event.first}!${event.kind}!${event.code}`;

/** The part of a LevelDB key iterator that {@link deviceKeys} moves and reads. */
interface SeekableKeys {
  seek(target: string): void;
  nextv(size: number): Promise<string[]>;
}

/** A device's stored history keys, read by moving an iterator over every history key (`e!` to `e"`) to it. */
async function deviceKeys(iterator: SeekableKeys, deviceId: string): Promise<string[]> {
  iterator.seek(`e!${deviceId}!`);
  const end = `e!${deviceId}"`;
  const keys: string[] = [];
  for (;;) {
    const batch = await iterator.nextv(32);
    for (const key of batch) {
      if (key >= end) return keys;
      keys.push(key);
    }
    if (batch.length === 0) return keys;
  }
}
const CRL_NUMBER_KEY = 'm!crl-number';
const CRL_KEY = 'm!crl';
const batchKey = (id: string): string => `b!${id}`;
const credentialKey = (serial: string): string => `k!${serial}`;

/** What a registry write job hands back: the device it changed and the serials it revoked. */
type WriteOutcome = DeviceChange;

/** Options of the LevelDB registry. */
export interface LevelRegistryOptions {
  readonly now?: () => Date;
  /** Observes the duration of every batch write (metrics). */
  readonly onBatchWritten?: (seconds: number) => void;
}

/** The LevelDB implementation of {@link Registry}. One process holds the database lock. */
export class LevelRegistry implements Registry {
  private readonly listeners = new Set<(change: DeviceChange) => void>();
  private readonly trustListeners = new Set<() => void>();
  private readonly credentialListeners = new Set<(record: CredentialRecord) => void>();
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly db: Level<string, string>,
    private readonly queue: WriteQueue,
    private readonly now: () => Date,
    /**
     * Ids of every device on disk. A first enrollment looks up a device that does not exist yet,
     * and a LevelDB miss walks the levels of the tree (~0.3 ms measured under load); the set
     * answers misses from memory (about 60 bytes a device).
     */
    private readonly deviceIds: Set<string>,
    /** Device records recently read or written (device-cache.ts): an enrollment reads its device twice. */
    private readonly devices: DeviceRecordCache,
    /** How many history entries each device may have on disk (history-bounds.ts). */
    private readonly historyBounds: HistoryBounds,
  ) {}

  /** Opens (creating if needed) the registry at `path`. */
  static async open(path: string, options: LevelRegistryOptions = {}): Promise<LevelRegistry> {
    const db = new Level<string, string>(path, { valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new RegistryError('REGISTRY_LOCKED', `the registry at ${path} is in use by another process (is fleetgate serve running? use the admin API)`, { cause: error });
      }
      throw new RegistryError('REGISTRY_IO', `cannot open the registry at ${path}`, { cause: error });
    }
    const headJson = await db.get(AUDIT_HEAD_KEY);
    const head: AuditHead = headJson ? (JSON.parse(headJson) as AuditHead) : { seq: 0, hash: AUDIT_GENESIS };
    const now = options.now ?? (() => new Date());
    const deviceIds = new Set<string>();
    for await (const key of db.keys({ gt: 'd!', lt: 'd"' })) deviceIds.add(key.slice(2));
    const devices = new DeviceRecordCache(DEVICE_CACHE_ENTRIES);
    const store = {
      get: (key: string) => {
        if (!isDeviceKey(key)) return db.get(key);
        return deviceIds.has(key.slice(2)) ? devices.read(key, (stored) => db.get(stored)) : Promise.resolve(undefined);
      },
      batch: async (ops: WriteOp[], batchOptions: { sync: boolean }) => {
        await db.batch(ops.map((op) => ({ ...op })), batchOptions);
        for (const op of ops) if (op.type === 'put' && isDeviceKey(op.key)) deviceIds.add(op.key.slice(2));
        // Before the writer resolves its jobs: no caller learns of a write the cache does not know.
        devices.written(ops, isDeviceKey);
      },
    };
    const historyBounds = new HistoryBounds(HISTORY_BOUND_ENTRIES);
    return new LevelRegistry(path, db, new WriteQueue(store, head, now, 256, options.onBatchWritten), now, deviceIds, devices, historyBounds);
  }

  private ensureOpen(): void {
    if (this.closed) throw new RegistryError('REGISTRY_CLOSED', 'the registry is closed');
  }

  private async readJson<T>(key: string): Promise<T | undefined> {
    this.ensureOpen();
    const raw = await this.db.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    this.ensureOpen();
    if (!this.deviceIds.has(id)) return undefined;
    const raw = await this.devices.read(deviceKey(id), (key) => this.db.get(key));
    return raw === undefined ? undefined : (JSON.parse(raw) as DeviceRecord);
  }

  getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    return this.readJson<CertificateRecord>(certKey(serial));
  }

  async listDevices(query: DeviceQuery = {}): Promise<DeviceRecord[]> {
    this.ensureOpen();
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    const out: DeviceRecord[] = [];
    for await (const value of this.db.values(deviceRange(query))) {
      const device = JSON.parse(value) as DeviceRecord;
      if (query.state && device.state !== query.state) continue;
      if (query.model && device.model !== query.model) continue;
      if (query.expiresBefore && !(Date.parse(device.certNotAfter) < Date.parse(query.expiresBefore))) continue;
      out.push(device);
      if (out.length >= limit) break;
    }
    return out;
  }

  async listCertificates(deviceId: string): Promise<CertificateRecord[]> {
    this.ensureOpen();
    const serials: string[] = [];
    for await (const key of this.db.keys({ gt: `dc!${deviceId}!`, lt: `dc!${deviceId}"`, reverse: true })) {
      serials.push(key.slice(key.lastIndexOf('!') + 1));
    }
    const records = await Promise.all(serials.map((serial) => this.getCertificate(serial)));
    return records.filter((record): record is CertificateRecord => record !== undefined);
  }

  async revokedSerials(): Promise<Set<string>> {
    this.ensureOpen();
    const out = new Set<string>();
    for await (const key of this.db.keys({ gt: 'r!', lt: 'r"' })) out.add(key.slice(2));
    return out;
  }

  async commitIssuance(commit: IssuanceCommit): Promise<void> {
    this.ensureOpen();
    await this.writeDevice(
      async (tx) => {
        const storedJson = await tx.get(deviceKey(commit.device.id));
        checkIssuance(storedJson ? (JSON.parse(storedJson) as DeviceRecord) : undefined, commit);
        tx.put(deviceKey(commit.device.id), JSON.stringify(commit.device));
        tx.put(certKey(commit.certificate.serial), JSON.stringify(commit.certificate));
        tx.put(deviceCertKey(commit.certificate), '');
        const revokedSerials: string[] = [];
        if (commit.previous) {
          const revoked = await this.markCertificate(tx, commit.previous.serial, commit.previous.status, commit.previous.reason);
          if (revoked) revokedSerials.push(commit.previous.serial);
        }
        tx.audit(commit.audit);
        return { device: commit.device, revokedSerials };
      },
      true,
    );
  }

  private async markCertificate(
    tx: QueueTransaction,
    serial: string,
    status: 'superseded' | 'revoked',
    reason: NonNullable<CertificateRecord['revocationReason']>,
  ): Promise<boolean> {
    const json = await tx.get(certKey(serial));
    const marked = json === undefined ? undefined : markedCertificate(JSON.parse(json) as CertificateRecord, status, reason, this.now());
    if (!marked) return false;
    tx.put(certKey(serial), JSON.stringify(marked.record));
    if (marked.audit) {
      tx.put(revokedKey(serial), '');
      tx.audit(marked.audit);
    }
    return marked.audit !== undefined;
  }

  async changeState(change: StateChange): Promise<DeviceRecord> {
    return singleActionOutcome(await this.applyDeviceActions([stateChangeRequest(change)], { allOrNothing: true }), change.deviceId);
  }

  async resetDevice(deviceId: string, actor: string): Promise<DeviceRecord> {
    return singleActionOutcome(await this.applyDeviceActions([{ deviceId, action: 'reset', actor }], { allOrNothing: true }), deviceId);
  }

  async applyDeviceActions(actions: readonly DeviceActionRequest[], options: { readonly allOrNothing: boolean }): Promise<DeviceActionResult[]> {
    this.ensureOpen();
    const { result } = await this.queue.run(
      async (tx) => {
        // Pass 1: decide every action against the device as it is (or as an earlier action of this
        // call leaves it), writing nothing. The writer queue runs one job at a time, so nothing
        // changes between this check and the writes below (LevelDB has no compare-and-swap).
        const planned = new Map<string, DeviceRecord>();
        const decisions: { request: DeviceActionRequest; before?: DeviceRecord; result: DeviceActionResult }[] = [];
        for (const request of actions) {
          const json = planned.has(request.deviceId) ? undefined : await tx.get(deviceKey(request.deviceId));
          const before = planned.get(request.deviceId) ?? (json ? (JSON.parse(json) as DeviceRecord) : undefined);
          const result = decideDeviceAction(request, before, this.now());
          if (result.status === 'changed') planned.set(request.deviceId, result.device);
          decisions.push({ request, before, result });
        }
        const refused = decisions.some((decision) => decision.result.status === 'refused');
        if (refused && options.allOrNothing) {
          return {
            results: decisions.map(({ result }) => (result.status === 'changed' ? { ...result, status: 'skipped' as const } : result)),
            changes: [] as DeviceChange[],
          };
        }
        // Pass 2: write the changes, each audited once.
        const changes: DeviceChange[] = [];
        for (const { request, before, result } of decisions) {
          if (result.status !== 'changed' || !before) continue;
          tx.put(deviceKey(result.device.id), JSON.stringify(result.device));
          const revokedSerials: string[] = [];
          if (request.action === 'revoke') {
            // Every certificate of the device still valid is revoked, superseded ones included. The
            // current one is read through the transaction: it may have been issued in this round.
            const serials = new Set(before.certSerial === '' ? [] : [before.certSerial]);
            for await (const key of this.db.keys({ gt: `dc!${before.id}!`, lt: `dc!${before.id}"` })) serials.add(key.slice(key.lastIndexOf('!') + 1));
            for (const serial of serials) {
              if (await this.markCertificate(tx, serial, 'revoked', request.revocationReason ?? 'unspecified')) revokedSerials.push(serial);
            }
          }
          tx.audit(deviceActionAudit(request, before));
          changes.push({ device: result.device, revokedSerials });
        }
        return { results: decisions.map(({ result }) => result), changes };
      },
      { sync: true },
    );
    for (const change of result.changes) for (const listener of this.listeners) listener(change);
    return result.results;
  }

  async audit(event: AuditEvent): Promise<AuditEntry> {
    this.ensureOpen();
    const { audit } = await this.queue.run(async (tx) => tx.audit(event), { sync: false });
    return audit[0] as AuditEntry;
  }

  async readAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return (await this.readAuditPage(query)).entries;
  }

  async readAuditPage(query: AuditQuery = {}): Promise<AuditPage> {
    this.ensureOpen();
    // The head first: every entry up to it is on disk before the iterator takes its snapshot.
    return readLevelAuditPage(this.db, this.queue.auditHead.seq, query);
  }

  async verifyAudit(): Promise<AuditVerification> {
    this.ensureOpen();
    let expectedSeq = 1;
    let prevHash = AUDIT_GENESIS;
    for await (const [key, value] of this.db.iterator({ gt: 'a!', lt: 'a"' })) {
      let entry: AuditEntry;
      try {
        entry = JSON.parse(value) as AuditEntry;
      } catch {
        return { ok: false, entries: expectedSeq - 1, brokenAt: expectedSeq, reason: `entry ${key} is not valid JSON` };
      }
      if (entry.seq !== expectedSeq || key !== auditKey(entry.seq)) {
        return { ok: false, entries: expectedSeq - 1, brokenAt: expectedSeq, reason: `entry ${expectedSeq} is missing` };
      }
      if (entry.prevHash !== prevHash) {
        return { ok: false, entries: expectedSeq - 1, brokenAt: entry.seq, reason: `entry ${entry.seq} does not follow entry ${entry.seq - 1}` };
      }
      if (!auditEntryIntact(entry)) {
        return { ok: false, entries: expectedSeq - 1, brokenAt: entry.seq, reason: `entry ${entry.seq} was altered` };
      }
      prevHash = entry.hash;
      expectedSeq++;
    }
    const head = this.queue.auditHead;
    if (head.seq !== expectedSeq - 1 || head.hash !== prevHash) {
      return { ok: false, entries: expectedSeq - 1, brokenAt: expectedSeq, reason: `the log ends at entry ${expectedSeq - 1} but the head says ${head.seq}` };
    }
    return { ok: true, entries: expectedSeq - 1, head: prevHash };
  }

  async revokedCertificates(): Promise<CertificateRecord[]> {
    const serials = await this.revokedSerials();
    const records = await Promise.all([...serials].map((serial) => this.getCertificate(serial)));
    return records.filter((record): record is CertificateRecord => record !== undefined);
  }

  async nextCrlNumber(): Promise<bigint> {
    this.ensureOpen();
    const { result } = await this.queue.run(async (tx) => {
      const next = BigInt((await tx.get(CRL_NUMBER_KEY)) ?? '0') + 1n;
      tx.put(CRL_NUMBER_KEY, next.toString());
      return next;
    }, { sync: true });
    return result;
  }

  async saveCrl(crl: StoredCrl): Promise<void> {
    this.ensureOpen();
    await this.queue.run(async (tx) => {
      const stored = await tx.get(CRL_KEY);
      if (stored === undefined || BigInt((JSON.parse(stored) as StoredCrl).number) < BigInt(crl.number)) tx.put(CRL_KEY, JSON.stringify(crl));
    }, { sync: false });
  }

  currentCrl(): Promise<StoredCrl | undefined> {
    return this.readJson<StoredCrl>(CRL_KEY);
  }

  async putTrust(trust: TrustRecord): Promise<void> {
    this.ensureOpen();
    const { result: provisioned } = await this.queue.run(async (tx) => {
      tx.put(trustKey(trust.name), JSON.stringify(trust));
      // The ids of an allow-list are provisioned under this trust: listed, and revocable before
      // their first enrollment like the ids of a `bootstrap issue` batch.
      const allowList = allowListBatch(trust);
      const fresh: DeviceRecord[] = [];
      if (allowList) await this.provision(tx, allowList, trust.actor, fresh);
      tx.audit(trustAddedAudit(trust));
      return fresh;
    }, { sync: true });
    this.announceProvisioned(provisioned);
    for (const listener of this.trustListeners) listener();
  }

  async deleteTrust(name: string, actor: string): Promise<boolean> {
    this.ensureOpen();
    const { result } = await this.queue.run(async (tx) => {
      if ((await tx.get(trustKey(name))) === undefined) return false;
      tx.del(trustKey(name));
      tx.audit({ type: 'trust-removed', detail: name, actor });
      return true;
    }, { sync: true });
    if (result) for (const listener of this.trustListeners) listener();
    return result;
  }

  async listTrusts(): Promise<TrustRecord[]> {
    this.ensureOpen();
    const out: TrustRecord[] = [];
    for await (const value of this.db.values({ gt: 't!', lt: 't"' })) out.push(JSON.parse(value) as TrustRecord);
    return out;
  }

  onTrustChange(listener: () => void): () => void {
    this.trustListeners.add(listener);
    return () => this.trustListeners.delete(listener);
  }

  async importBatch(batch: ProvisionBatch, actor: string): Promise<BatchImport> {
    this.ensureOpen();
    const fresh: DeviceRecord[] = [];
    const { result } = await this.queue.run((tx) => this.provision(tx, batch, actor, fresh), { sync: true });
    this.announceProvisioned(fresh);
    return result;
  }

  /** Tells the device listeners of ids a batch recorded (the census counts them). */
  private announceProvisioned(devices: readonly DeviceRecord[]): void {
    for (const device of devices) for (const listener of this.listeners) listener({ device, revokedSerials: [] });
  }

  /** Records a batch's unknown ids as provisioned, inside a writer job. */
  /** `fresh` receives the records of the ids it adds (announced once the write is on disk). */
  private async provision(tx: QueueTransaction, batch: ProvisionBatch, actor: string, fresh: DeviceRecord[]): Promise<BatchImport> {
    const knownJson = await tx.get(batchKey(batch.id));
    if (batchAlreadyImported(knownJson === undefined ? undefined : (JSON.parse(knownJson) as BatchSummary), batch)) {
      return { batch: batch.id, added: 0, existing: batch.devices.length };
    }
    const timestamp = this.now().toISOString();
    let added = 0;
    let existing = 0;
    for (const entry of batch.devices) {
      // Known ids stay as they are: imported before, enrolled, revoked or reset meanwhile.
      if ((await tx.get(deviceKey(entry.id))) !== undefined) {
        existing++;
        continue;
      }
      const record = provisionedDevice(batch, entry, timestamp);
      tx.put(deviceKey(entry.id), JSON.stringify(record));
      fresh.push(record);
      added++;
    }
    // A batch imported again with nothing new writes nothing, not even an audit entry.
    if (knownJson !== undefined && added === 0) return { batch: batch.id, added, existing };
    const summary: BatchSummary = { id: batch.id, model: batch.model, trust: batch.trust, issuedAt: batch.issuedAt, count: batch.devices.length, importedAt: timestamp };
    tx.put(batchKey(batch.id), JSON.stringify(summary));
    tx.audit(batchImportAudit(batch, added, existing, actor));
    return { batch: batch.id, added, existing };
  }

  async recordCredential(record: CredentialRecord, actor: string): Promise<CredentialRecord> {
    this.ensureOpen();
    const { result } = await this.queue.run(async (tx) => {
      const stored = await tx.get(credentialKey(record.serial));
      if (stored !== undefined) return { record: JSON.parse(stored) as CredentialRecord, fresh: false };
      tx.put(credentialKey(record.serial), JSON.stringify(record));
      const audit = credentialRecordedAudit(record, actor);
      if (audit) tx.audit(audit);
      return { record, fresh: true };
    }, { sync: true });
    if (result.fresh) for (const listener of this.credentialListeners) listener(result.record);
    return result.record;
  }

  getCredential(serial: string): Promise<CredentialRecord | undefined> {
    return this.readJson<CredentialRecord>(credentialKey(serial));
  }

  async listCredentials(kind?: CredentialKind): Promise<CredentialRecord[]> {
    this.ensureOpen();
    const out: CredentialRecord[] = [];
    for await (const value of this.db.values({ gt: 'k!', lt: 'k"' })) {
      const record = JSON.parse(value) as CredentialRecord;
      if (kind === undefined || record.kind === kind) out.push(record);
    }
    return sortCredentials(out);
  }

  async revokeCredentials(revocation: CredentialRevocation): Promise<CredentialRecord[]> {
    this.ensureOpen();
    const { result } = await this.queue.run(async (tx) => {
      // Read through the transaction: a credential recorded or revoked earlier in this round counts.
      const all: CredentialRecord[] = [];
      for await (const key of this.db.keys({ gt: 'k!', lt: 'k"' })) {
        const json = await tx.get(key);
        if (json !== undefined) all.push(JSON.parse(json) as CredentialRecord);
      }
      const plan = planCredentialRevocation(all, revocation, this.now());
      for (const record of plan.changed) {
        tx.put(credentialKey(record.serial), JSON.stringify(record));
        tx.audit(credentialRevokedAudit(record, revocation.actor));
      }
      return plan;
    }, { sync: true });
    for (const record of result.changed) for (const listener of this.credentialListeners) listener(record);
    return result.out;
  }

  onCredentialChange(listener: (record: CredentialRecord) => void): () => void {
    this.credentialListeners.add(listener);
    return () => this.credentialListeners.delete(listener);
  }

  async recordPresence(updates: readonly PresenceRecord[]): Promise<void> {
    this.ensureOpen();
    if (updates.length === 0) return;
    await this.queue.run(async (tx) => {
      for (const update of updates) tx.put(presenceKey(update.deviceId), JSON.stringify(update));
    }, { sync: false });
  }

  getPresence(deviceId: string): Promise<PresenceRecord | undefined> {
    return this.readJson<PresenceRecord>(presenceKey(deviceId));
  }

  async getPresences(deviceIds: readonly string[]): Promise<(PresenceRecord | undefined)[]> {
    this.ensureOpen();
    if (deviceIds.length === 0) return [];
    const raw = await this.db.getMany(deviceIds.map(presenceKey));
    return raw.map((value) => (value === undefined ? undefined : (JSON.parse(value) as PresenceRecord)));
  }

  async recordDeviceEvents(events: readonly DeviceEventRecord[], keepPerDevice: number): Promise<void> {
    this.ensureOpen();
    if (events.length === 0) return;
    const byDevice = new Map<string, Set<string>>();
    for (const event of events) {
      const keys = byDevice.get(event.deviceId) ?? new Set<string>();
      keys.add(deviceEventKey(event));
      byDevice.set(event.deviceId, keys);
    }
    const { result: bounds } = await this.queue.run(async (tx) => {
      for (const event of events) tx.put(deviceEventKey(event), JSON.stringify(event));
      // Trim each device to its newest entries. Keys sort by time, so the newest come first in
      // reverse order. A device whose bound stays within the limit is not read at all; the others'
      // stored keys are read from disk: every history write goes through this one job kind, and
      // its caller waits for one batch before it sends the next. One iterator over all history,
      // moved from device to device in key order: an iterator per device cost about 35 µs more
      // per device and flush (docs/benchmarks.md).
      const next = new Map<string, number>();
      let iterator: (SeekableKeys & { close(): Promise<void> }) | undefined;
      try {
        for (const deviceId of [...byDevice.keys()].sort()) {
          const written = byDevice.get(deviceId) as Set<string>;
          const bound = this.historyBounds.after(deviceId, written.size);
          if (bound !== undefined && bound <= keepPerDevice) {
            next.set(deviceId, bound);
            continue;
          }
          iterator ??= this.db.keys({ gt: 'e!', lt: 'e"' });
          const keys = new Set(written);
          for (const key of await deviceKeys(iterator, deviceId)) keys.add(key);
          const sorted = [...keys].sort().reverse();
          for (const key of sorted.slice(keepPerDevice)) tx.del(key);
          next.set(deviceId, Math.min(keys.size, keepPerDevice));
        }
      } finally {
        await iterator?.close();
      }
      return next;
    }, { sync: false });
    // Only now that the batch is on disk: a failed write leaves the bounds as they were.
    for (const [deviceId, bound] of bounds) this.historyBounds.set(deviceId, bound);
  }

  async listDeviceEvents(deviceId: string, limit = Number.POSITIVE_INFINITY): Promise<DeviceEventRecord[]> {
    this.ensureOpen();
    const out: DeviceEventRecord[] = [];
    for await (const value of this.db.values({ gt: `e!${deviceId}!`, lt: `e!${deviceId}"`, reverse: true })) {
      out.push(JSON.parse(value) as DeviceEventRecord);
      if (out.length >= limit) break;
    }
    return out;
  }

  async ping(): Promise<void> {
    this.ensureOpen();
    await this.db.get(AUDIT_HEAD_KEY);
  }

  onDeviceChange(listener: (change: DeviceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs a device job in the single writer; once on disk, tells listeners what changed. */
  private async writeDevice(job: (tx: QueueTransaction) => Promise<WriteOutcome>, sync: boolean): Promise<DeviceRecord> {
    const { result } = await this.queue.run(job, { sync });
    for (const listener of this.listeners) listener(result);
    return result.device;
  }

  async status(): Promise<RegistryStatus> {
    this.ensureOpen();
    const devices: Record<DeviceState, number> = { provisioned: 0, enrolled: 0, disabled: 0, revoked: 0 };
    for await (const value of this.db.values({ gt: 'd!', lt: 'd"' })) devices[(JSON.parse(value) as DeviceRecord).state]++;
    const count = async (prefix: string): Promise<number> => {
      let total = 0;
      for await (const _key of this.db.keys({ gt: `${prefix}!`, lt: `${prefix}"` })) total++;
      return total;
    };
    const head = this.queue.auditHead;
    return {
      engine: 'leveldb',
      location: this.path,
      schemaVersion: null,
      devices,
      certificates: await count('c'),
      trusts: await count('t'),
      credentials: await count('k'),
      audit: { entries: head.seq, head: head.hash },
      crlNumber: (await this.db.get(CRL_NUMBER_KEY)) ?? '0',
    };
  }

  async *exportRecords(): AsyncGenerator<RegistryRecord> {
    this.ensureOpen();
    // One process holds the database, and `registry export` is that process: nothing writes meanwhile.
    const values = (prefix: string) => this.db.values({ gt: `${prefix}!`, lt: `${prefix}"` });
    for await (const value of values('t')) yield { kind: 'trust', record: JSON.parse(value) as TrustRecord };
    for await (const value of values('b')) yield { kind: 'batch', record: JSON.parse(value) as BatchSummary };
    for await (const value of values('k')) yield { kind: 'credential', record: JSON.parse(value) as CredentialRecord };
    for await (const value of values('d')) yield { kind: 'device', record: JSON.parse(value) as DeviceRecord };
    for await (const value of values('c')) yield { kind: 'certificate', record: JSON.parse(value) as CertificateRecord };
    for await (const value of values('p')) yield { kind: 'presence', record: JSON.parse(value) as PresenceRecord };
    for await (const value of values('e')) yield { kind: 'device-event', record: JSON.parse(value) as DeviceEventRecord };
    for await (const value of values('a')) yield { kind: 'audit', record: JSON.parse(value) as AuditEntry };
    yield { kind: 'crl-number', value: (await this.db.get(CRL_NUMBER_KEY)) ?? '0' };
  }

  async importRecords(records: AsyncIterable<RegistryRecord>): Promise<void> {
    this.ensureOpen();
    await this.queue.idle();
    if (this.deviceIds.size > 0 || this.queue.auditHead.seq > 0) throw new RegistryError('REGISTRY_NOT_EMPTY', `the registry at ${this.path} already holds devices or audit entries`);
    // Everything in one batch, written only once the records have all been read (and checked):
    // a file that fails half way leaves the registry empty.
    const ops: WriteOp[] = [];
    const put = (key: string, value: unknown): void => void ops.push({ type: 'put', key, value: typeof value === 'string' ? value : JSON.stringify(value) });
    let head: AuditHead = { seq: 0, hash: AUDIT_GENESIS };
    const ids: string[] = [];
    for await (const entry of records) {
      switch (entry.kind) {
        case 'trust':
          put(trustKey(entry.record.name), entry.record);
          break;
        case 'batch':
          put(batchKey(entry.record.id), entry.record);
          break;
        case 'credential':
          put(credentialKey(entry.record.serial), entry.record);
          break;
        case 'device':
          put(deviceKey(entry.record.id), entry.record);
          ids.push(entry.record.id);
          break;
        case 'certificate':
          put(certKey(entry.record.serial), entry.record);
          put(deviceCertKey(entry.record), '');
          if (entry.record.status === 'revoked') put(revokedKey(entry.record.serial), '');
          break;
        case 'presence':
          put(presenceKey(entry.record.deviceId), entry.record);
          break;
        case 'device-event':
          put(deviceEventKey(entry.record), entry.record);
          break;
        case 'audit':
          put(auditKey(entry.record.seq), entry.record);
          if (entry.record.deviceId) put(`ad!${entry.record.deviceId}!${auditKey(entry.record.seq).slice(2)}`, '');
          head = { seq: entry.record.seq, hash: entry.record.hash };
          break;
        case 'crl-number':
          put(CRL_NUMBER_KEY, entry.value);
          break;
      }
    }
    put(AUDIT_HEAD_KEY, head);
    await this.db.batch(ops, { sync: true });
    this.devices.clear();
    this.historyBounds.clear();
    for (const id of ids) this.deviceIds.add(id);
    this.queue.resume(head);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.idle();
    await this.db.close();
  }
}
