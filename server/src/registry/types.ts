/**
 * The Registry: everything fleetgate remembers about devices, certificates and what happened.
 *
 * Transports (EST, broker, admin API) and the issuance authority depend on this interface only;
 * `level/` implements it on LevelDB. Another engine (PostgreSQL) is one more folder.
 * Each user declares the part it needs next to itself, as a `Pick` of this interface
 * (`EnrollmentStore`, `BrokerStore`, `CrlStore`, `OperatorStore`, `AdminReadStore`, ...), and
 * depends on that only; `Registry` is their union, what every engine implements.
 */

/**
 * Lifecycle state of a device. `provisioned`: a bootstrap credential was issued for the id (a
 * batch of `fleetgate bootstrap issue`, or an allow-list of a trust) but the device has never
 * enrolled; an operator may revoke or disable it before its first boot (a unit lost in transit).
 * A device leaves `provisioned` by enrolling; `enable` and `reset` of a device that never
 * enrolled lead back to `provisioned`, never to `enrolled`.
 */
export type DeviceState = 'provisioned' | 'enrolled' | 'disabled' | 'revoked';

/** The factory (bootstrap) credential a device enrolled with. */
export interface BootstrapIdentity {
  /** Stable key of the bootstrap credential: `<issuer key id hex>:<serial hex>`. */
  readonly key: string;
  /** Name of the bootstrap trust that admitted it (`fleetgate-factory` or a manufacturer). */
  readonly trust: string;
  readonly serial: string;
}

/** A device as the registry knows it. */
export interface DeviceRecord {
  readonly id: string;
  readonly model: string;
  readonly state: DeviceState;
  /** Serial (hex) of the current operational certificate; `''` while the device never enrolled. */
  readonly certSerial: string;
  /** Expiry of the current operational certificate (ISO 8601); `''` while the device never enrolled. */
  readonly certNotAfter: string;
  /**
   * The bootstrap credential it enrolled with. Before the first enrollment: the one issued for it
   * (the trust, and the serial when the batch names it; `key` is `''`).
   */
  readonly bootstrap: BootstrapIdentity;
  /** The batch that provisioned the id: a `bootstrap issue` batch id, or `trust:<name>` for an allow-list. */
  readonly batch?: string;
  /** When its bootstrap credential was issued (or the allow-list registered), ISO 8601. */
  readonly provisionedAt?: string;
  /** How many times the device enrolled with a bootstrap credential. */
  readonly enrollments: number;
  readonly renewals: number;
  /** An operator reset allows one more bootstrap enrollment. */
  readonly resetPending: boolean;
  /** When the current certificate line began (last bootstrap enrollment), ISO 8601. */
  readonly enrolledAt?: string;
  /**
   * The certificate that authenticated the last renewal. A device whose renewal answer was lost
   * retries with it and the same new key, and gets the same certificate again.
   */
  readonly previousSerial?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Why the device is disabled or revoked. */
  readonly stateReason?: string;
}

/** Status of an issued certificate. */
export type CertificateStatus = 'valid' | 'superseded' | 'revoked';

/** RFC 5280 §5.3.1 reason codes fleetgate uses. */
export type RevocationReason = 'unspecified' | 'keyCompromise' | 'superseded' | 'cessationOfOperation' | 'affiliationChanged';

/**
 * The RFC 5280 §5.3.1 reasons an operator may give for revoking a device. Left out on purpose:
 * cACompromise and aACompromise (a device is not a CA or an attribute authority),
 * certificateHold and removeFromCRL (revocation is final here), privilegeWithdrawn (not in the
 * CRL encoder yet).
 */
export const REVOCATION_REASONS: readonly RevocationReason[] = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'];

/** One certificate the CA issued to a device. */
export interface CertificateRecord {
  readonly serial: string;
  readonly deviceId: string;
  readonly kind: 'operational';
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  readonly status: CertificateStatus;
  /** Base64 DER, so the registry can reproduce exactly what was handed out. */
  readonly der: string;
  readonly revokedAt?: string;
  readonly revocationReason?: RevocationReason;
}

/** Kinds of audit entries, as a list (the admin API and the CLI check `type` filters against it). */
export const AUDIT_TYPES = ['enrolled', 'renewed', 'resent', 'refused', 'revoked', 'disabled', 'enabled', 'reset', 'cert-revoked', 'trust-added', 'trust-removed', 'batch-imported', 'credential-recorded', 'credential-revoked'] as const;

/** Kinds of audit entries. */
export type AuditType = (typeof AUDIT_TYPES)[number];

/** What a caller asks to have audited. */
export interface AuditEvent {
  readonly type: AuditType;
  readonly deviceId?: string;
  readonly serial?: string;
  /** Error code for refusals. */
  readonly code?: string;
  readonly detail?: string;
  /** Who did it: `device:<id>`, `operator:<name>`, `system`. */
  readonly actor: string;
  /** Peer address for network events. */
  readonly peer?: string;
}

/** An audit entry as stored: sequence number, time and the hash chain (tamper evidence). */
export interface AuditEntry extends AuditEvent {
  readonly seq: number;
  readonly time: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** What an issuance commit expects to find, so a concurrent change makes it fail, not overwrite. */
export interface IssuancePrecondition {
  /** The device's current certificate serial when the request was authorized (absent: new device). */
  readonly currentSerial: string | undefined;
}

/** One issuance to record atomically and durably before the certificate leaves the server. */
export interface IssuanceCommit {
  readonly kind: 'enroll' | 'renew';
  readonly device: DeviceRecord;
  readonly certificate: CertificateRecord;
  readonly expect: IssuancePrecondition;
  /** A previous certificate to mark superseded or revoked in the same batch. */
  readonly previous?: { readonly serial: string; readonly status: 'superseded' | 'revoked'; readonly reason: RevocationReason };
  readonly audit: AuditEvent;
}

/** A change of device state by an operator or the system. */
export interface StateChange {
  readonly deviceId: string;
  readonly to: DeviceState;
  readonly reason?: string;
  readonly actor: string;
  /** For revocation: the RFC 5280 reason recorded on the certificate. */
  readonly revocationReason?: RevocationReason;
}

/** An operator action on a device's state: {@link StateChange}'s targets, and a reset. */
export type DeviceAction = 'revoke' | 'disable' | 'enable' | 'reset';

/** One device action to apply (see {@link Registry.applyDeviceActions}). */
export interface DeviceActionRequest {
  readonly deviceId: string;
  readonly action: DeviceAction;
  /** Why (disable: free text; revoke: kept as the state reason). */
  readonly reason?: string;
  readonly actor: string;
  /** For revocation: the RFC 5280 reason recorded on the certificates. */
  readonly revocationReason?: RevocationReason;
}

/**
 * What happened to one device of {@link Registry.applyDeviceActions}: `changed` (written and
 * audited once), `unchanged` (it already was in that state: nothing written, nothing audited),
 * `refused` (the action does not apply: unknown device, or enable/disable of a revoked one), or
 * `skipped` (it would have changed, but another action of an all-or-nothing call was refused).
 */
export type DeviceActionResult =
  | { readonly deviceId: string; readonly status: 'changed' | 'unchanged' | 'skipped'; readonly device: DeviceRecord }
  | { readonly deviceId: string; readonly status: 'refused'; readonly code: 'REGISTRY_NOT_FOUND' | 'REGISTRY_INVALID_STATE'; readonly message: string };

/** A change to a device, as listeners (the broker) see it once it is on disk. */
export interface DeviceChange {
  readonly device: DeviceRecord;
  /** Certificates of this device revoked by the change (the broker drops sessions using them). */
  readonly revokedSerials: readonly string[];
}

/** Connection presence of a device, written by the broker in batches. */
export interface PresenceRecord {
  readonly deviceId: string;
  readonly connected: boolean;
  /** Last time the device was heard from (connect, message, ping), ISO 8601. */
  readonly lastSeen: string;
  readonly connectedAt?: string;
  readonly disconnectedAt?: string;
  /** Remote address of the current or last connection. */
  readonly peer?: string;
  /**
   * The node of the current or last connection (cluster mode: `--node-id`). A disconnect recorded
   * by one node never overwrites a connection another node recorded (the device moved there).
   */
  readonly node?: string;
}

/** What the broker saw happen to a device's connection: a refused CONNECT or a dropped session. */
export type DeviceEventKind = 'refused' | 'dropped';

/**
 * One entry of a device's broker history (`fleetgate device show`), kept apart from the audit
 * chain: identical events within a window are one entry with a count, and only the newest
 * entries of each device are kept. Written by the broker in batches, like presence.
 */
export interface DeviceEventRecord {
  readonly deviceId: string;
  readonly kind: DeviceEventKind;
  /** The BROKER_* code of a refusal or a drop, or the drop reason (docs/broker.md, "Device history"). */
  readonly code: string;
  /** First occurrence, ISO 8601 (with kind and code, what identifies the entry). */
  readonly first: string;
  /** Last occurrence, ISO 8601. */
  readonly last: string;
  /** How many times it happened between `first` and `last`. */
  readonly count: number;
  /** Remote address of the last occurrence. */
  readonly peer?: string;
  /** Detail of the first occurrence. */
  readonly detail?: string;
}

/** A manufacturer CA trusted to vouch for devices at enrollment (step-ca calls this a provisioner). */
export interface TrustRecord {
  readonly name: string;
  /** The model every device admitted by this trust has. */
  readonly model: string;
  /** The manufacturer's CA certificate (and the chain above it, up to its root), PEM. */
  readonly caPem: string;
  /** SHA-256 fingerprint of the CA certificate that signs the bootstrap certificates. */
  readonly fingerprint: string;
  /**
   * Device-id prefix the trust may vouch for (`acme.`). A trust has a namespace, an allow-list or
   * both (both: an id must satisfy each). Records stored before namespaces existed may have
   * neither: such a trust admits nobody until an operator registers it again (ENROLL_TRUST_UNSCOPED).
   */
  readonly namespace?: string;
  /** When present, only these device ids may enroll through this trust. */
  readonly allowList?: readonly string[];
  readonly createdAt: string;
  readonly actor: string;
}

/** One id of a provisioning batch. */
export interface ProvisionedId {
  readonly id: string;
  /** Serial (hex) of its bootstrap certificate, when the batch knows it. */
  readonly serial?: string;
}

/**
 * Ids issued bootstrap credentials together: a `fleetgate bootstrap issue` batch (imported from
 * `<data>/batches/`) or the allow-list of a trust. Importing it again changes nothing.
 */
export interface ProvisionBatch {
  /** `bootstrap issue`'s batch id, or `trust:<name>` for an allow-list. */
  readonly id: string;
  readonly model: string;
  /** The bootstrap trust its credentials belong to (`fleetgate-factory` or a manufacturer's). */
  readonly trust: string;
  /** ISO 8601. */
  readonly issuedAt: string;
  readonly devices: readonly ProvisionedId[];
}

/** What importing a batch did. */
export interface BatchImport {
  readonly batch: string;
  /** Ids recorded as provisioned now. */
  readonly added: number;
  /** Ids the registry knew already (imported before, or enrolled): left as they were. */
  readonly existing: number;
}

/** Kinds of non-device client certificates. */
export type CredentialKind = 'operator' | 'service';

/** An operator (admin API) or service (broker) client certificate, as the registry knows it. */
export interface CredentialRecord {
  readonly kind: CredentialKind;
  readonly name: string;
  /** Lower-case hex without leading zeros, as every serial in the registry. */
  readonly serial: string;
  /** notBefore, ISO 8601. */
  readonly issuedAt: string;
  /** notAfter, ISO 8601. */
  readonly expiresAt: string;
  readonly state: 'valid' | 'revoked';
  /** How the registry learnt of it: from the record `issue` wrote, or at its first use. */
  readonly recordedVia: 'issue' | 'first-use';
  readonly recordedAt: string;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
}

/** Which credentials to revoke: a serial, or every valid one of a name. */
export interface CredentialRevocation {
  readonly kind: CredentialKind;
  /** A serial, or a name (a serial is tried first). */
  readonly ref: string;
  readonly actor: string;
  /**
   * Revoke even if no valid operator credential would be left (only `operator`): without it the
   * registry refuses with `REGISTRY_LAST_CREDENTIAL`.
   */
  readonly force?: boolean;
}

/** Filters for listing devices. */
export interface DeviceQuery {
  readonly state?: DeviceState;
  readonly model?: string;
  /** Only devices whose current certificate expires before this time (ISO 8601), expired ones included. */
  readonly expiresBefore?: string;
  /** Only devices whose id starts with this (a search box; served from the id order, so it stays fast). */
  readonly prefix?: string;
  /** Id order: ascending (default) or descending. */
  readonly order?: 'asc' | 'desc';
  /** Start after this id in the chosen order (pagination). */
  readonly after?: string;
  readonly limit?: number;
}

/** Filters, order and cursor for reading the audit log. */
export interface AuditQuery {
  readonly deviceId?: string;
  /** ISO 8601 lower bound on time (inclusive). */
  readonly since?: string;
  /** ISO 8601 upper bound on time (exclusive): `since`..`until` ranges tile. */
  readonly until?: string;
  /** Only these kinds (absent or empty: every kind). */
  readonly types?: readonly AuditType[];
  /** Only this actor (`operator:alice`); a value ending in `:` is a prefix (`operator:`, `trust:`). */
  readonly actor?: string;
  /** `oldest` first (the default, by sequence number) or `newest` first. */
  readonly order?: 'oldest' | 'newest';
  /** Cursor: only entries with a sequence number above this one. */
  readonly after?: number;
  /** Cursor: only entries with a sequence number below this one. */
  readonly before?: number;
  /** At most this many entries. */
  readonly limit?: number;
  /**
   * At most this many entries examined (a filter that matches little must not make one read walk
   * the whole log): the page then ends early with `more` set and a cursor to go on from.
   */
  readonly maxScan?: number;
}

/** One page of the audit log. */
export interface AuditPage {
  /** Matching entries in the order asked for. */
  readonly entries: AuditEntry[];
  /**
   * Sequence number where the read stopped: the last entry it examined, matching or not (or the
   * cursor it started from when it examined none). The next page of the same order passes it as
   * `before` (newest first) or `after` (oldest first): no entry is skipped or repeated.
   */
  readonly cursor: number;
  /** The read stopped at `limit` or `maxScan`, not at the end of the range: there may be more. */
  readonly more: boolean;
  /**
   * Sequence number of the newest entry when the read began (0: empty log). Every entry up to it
   * was readable then, so following the log from `after = head` misses nothing.
   */
  readonly head: number;
}

/** Result of checking the audit hash chain. */
export type AuditVerification =
  | { readonly ok: true; readonly entries: number; readonly head: string }
  | { readonly ok: false; readonly entries: number; readonly brokenAt: number; readonly reason: string };

/** The newest CRL any process signed: every process serves this one (same number, same bytes). */
export interface StoredCrl {
  /** Its cRLNumber, decimal. */
  readonly number: string;
  /** The CRL, base64 DER. */
  readonly der: string;
  readonly thisUpdate: string;
}

/** What `fleetgate registry status` shows. */
export interface RegistryStatus {
  readonly engine: 'leveldb' | 'postgres';
  /** The LevelDB directory, or the PostgreSQL URL without its password. */
  readonly location: string;
  /** The schema version (PostgreSQL migrations); null for LevelDB, which has none. */
  readonly schemaVersion: number | null;
  /** Devices by state. */
  readonly devices: Readonly<Record<DeviceState, number>>;
  readonly certificates: number;
  readonly trusts: number;
  readonly credentials: number;
  /** Entries of the audit log and the hash of the newest (its head). */
  readonly audit: { readonly entries: number; readonly head: string };
  /** The last cRLNumber handed out (a decimal string: it may exceed 2^53). */
  readonly crlNumber: string;
}

/** What a provisioning batch leaves in the registry besides its ids (which are device records). */
export interface BatchRecord {
  readonly id: string;
  readonly model: string;
  readonly trust: string;
  readonly issuedAt: string;
  readonly count: number;
  readonly importedAt: string;
}

/**
 * One record of a registry as `fleetgate registry export` writes it and `registry import` reads
 * it: every engine exports and imports the same records, so a fleet moves between engines (and an
 * export is a backup of either).
 */
export type RegistryRecord =
  | { readonly kind: 'trust'; readonly record: TrustRecord }
  | { readonly kind: 'batch'; readonly record: BatchRecord }
  | { readonly kind: 'credential'; readonly record: CredentialRecord }
  | { readonly kind: 'device'; readonly record: DeviceRecord }
  | { readonly kind: 'certificate'; readonly record: CertificateRecord }
  | { readonly kind: 'presence'; readonly record: PresenceRecord }
  | { readonly kind: 'device-event'; readonly record: DeviceEventRecord }
  /** Audit entries come in sequence order, sealed as they were. */
  | { readonly kind: 'audit'; readonly record: AuditEntry }
  /** The last cRLNumber handed out (decimal). */
  | { readonly kind: 'crl-number'; readonly value: string };

/** Kinds of {@link RegistryRecord}, in the order an export writes them. */
export const REGISTRY_RECORD_KINDS = ['trust', 'batch', 'credential', 'device', 'certificate', 'presence', 'device-event', 'audit', 'crl-number'] as const;

/** Persistent state of fleetgate. All writes are atomic; issuance commits are durable (fsync). */
export interface Registry {
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  listDevices(query?: DeviceQuery): Promise<DeviceRecord[]>;
  /** Certificates of one device, newest first. */
  listCertificates(deviceId: string): Promise<CertificateRecord[]>;
  /** Serials of every revoked certificate (for the broker's in-memory set and the CRL). */
  revokedSerials(): Promise<Set<string>>;

  /**
   * Records an issuance: device, certificate, previous certificate status and audit entry in one
   * synced batch. Fails with a RegistryError `REGISTRY_CONFLICT` if the precondition no longer
   * holds, or `REGISTRY_DEVICE_BLOCKED` if the device was disabled or revoked meanwhile.
   */
  commitIssuance(commit: IssuanceCommit): Promise<void>;
  /** Changes a device's state (revocation also revokes its current certificate). */
  changeState(change: StateChange): Promise<DeviceRecord>;
  /** Allows one more bootstrap enrollment for a device. */
  resetDevice(deviceId: string, actor: string): Promise<DeviceRecord>;
  /**
   * Applies operator actions to devices in one job of the registry's single writer: every device
   * is checked first, then the changes are written in one batch. With `allOrNothing`, one refused
   * action means nothing is written (the others are `skipped`). An action that changes nothing is
   * `unchanged` and is not audited.
   */
  applyDeviceActions(actions: readonly DeviceActionRequest[], options: { readonly allOrNothing: boolean }): Promise<DeviceActionResult[]>;
  /** Appends an audit entry on its own (refusals). */
  audit(event: AuditEvent): Promise<AuditEntry>;
  /** The entries of one page of {@link readAuditPage}. */
  readAudit(query?: AuditQuery): Promise<AuditEntry[]>;
  /** Reads the audit log by sequence number (either direction), filtered while it reads. */
  readAuditPage(query?: AuditQuery): Promise<AuditPage>;
  verifyAudit(): Promise<AuditVerification>;

  /** Revoked certificates with their revocation time and reason (for the CRL). */
  revokedCertificates(): Promise<CertificateRecord[]>;
  /** The next cRLNumber: strictly increasing across restarts (RFC 5280 §5.2.3). */
  nextCrlNumber(): Promise<bigint>;
  /** Keeps `crl` as the current CRL unless one with a higher number is stored already. */
  saveCrl(crl: StoredCrl): Promise<void>;
  /** The current CRL (the highest number saved), if any. */
  currentCrl(): Promise<StoredCrl | undefined>;

  /** Adds or replaces a trusted manufacturer CA. */
  putTrust(trust: TrustRecord): Promise<void>;
  /** Removes a trust; false if there was none by that name. */
  deleteTrust(name: string, actor: string): Promise<boolean>;
  listTrusts(): Promise<TrustRecord[]>;
  /** Subscribes to changes of the trusted CAs (EST reloads its trust store). */
  onTrustChange(listener: () => void): () => void;

  /** Writes presence updates in one batch (not synced: presence is advisory). */
  recordPresence(updates: readonly PresenceRecord[]): Promise<void>;
  getPresence(deviceId: string): Promise<PresenceRecord | undefined>;
  /**
   * The presence of several devices in one read, in the order asked (undefined where none): the
   * broker merges each presence batch with what is stored, and one read of the batch costs a
   * fraction of a read per device (LevelDB getMany, one PostgreSQL query).
   */
  getPresences(deviceIds: readonly string[]): Promise<(PresenceRecord | undefined)[]>;

  /**
   * Writes device history entries in one batch (not synced: history is advisory, like presence).
   * An entry with the same device, kind, code and `first` as a stored one replaces it (its count
   * grew); each device keeps its newest `keepPerDevice` entries, older ones are deleted.
   */
  recordDeviceEvents(events: readonly DeviceEventRecord[], keepPerDevice: number): Promise<void>;
  /** A device's history entries, newest first. */
  listDeviceEvents(deviceId: string, limit?: number): Promise<DeviceEventRecord[]>;
  /** A cheap read that proves the registry answers (readiness); throws when it does not. */
  ping(): Promise<void>;
  /** Records provisioned ids of a batch (idempotent: known ids and known batches are left alone). */
  importBatch(batch: ProvisionBatch, actor: string): Promise<BatchImport>;
  /** Records an operator or service certificate; a serial already on record is left as it is and returned. */
  recordCredential(record: CredentialRecord, actor: string): Promise<CredentialRecord>;
  getCredential(serial: string): Promise<CredentialRecord | undefined>;
  listCredentials(kind?: CredentialKind): Promise<CredentialRecord[]>;
  /**
   * Revokes credentials by serial or name. `REGISTRY_NOT_FOUND` when nothing matches,
   * `REGISTRY_LAST_CREDENTIAL` when it would revoke the last valid operator credential unforced.
   */
  revokeCredentials(revocation: CredentialRevocation): Promise<CredentialRecord[]>;
  /** Subscribes to credential changes (admin API and broker refuse revoked ones at once). */
  onCredentialChange(listener: (record: CredentialRecord) => void): () => void;

  /** Subscribes to device changes (the broker drops revoked sessions). Returns unsubscribe. */
  onDeviceChange(listener: (change: DeviceChange) => void): () => void;

  /** Engine, location, schema version and counts (`fleetgate registry status`). */
  status(): Promise<RegistryStatus>;
  /** Every record, as one consistent snapshot (kinds in {@link REGISTRY_RECORD_KINDS} order). */
  exportRecords(): AsyncIterable<RegistryRecord>;
  /**
   * Writes exported records into this registry, all or nothing. Refused with
   * `REGISTRY_NOT_EMPTY` unless the registry holds no device and no audit entry; a failure of the
   * records (the iterable throws) leaves it as it was.
   */
  importRecords(records: AsyncIterable<RegistryRecord>): Promise<void>;
  close(): Promise<void>;
}
