/**
 * The registry's schema, as numbered migrations. A migration is applied once, in order, inside
 * the transaction that records it (server/src/registry/postgres/migrate.ts); a released
 * migration never changes: a change of schema is a new one.
 *
 * Records are kept whole as `json` (not `jsonb`: it keeps the text, so a record reads back with
 * its fields in the order they were written, byte for byte what the LevelDB registry returns);
 * the columns beside them are what queries filter and order by. Text keys sort with the "C"
 * collation, the byte order LevelDB uses, whatever the database's locale.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry',
    sql: `
      -- One row: the head of the audit chain, the last change sequence number and the last
      -- cRLNumber. Every write of record holds this row's lock for its transaction, so audit
      -- entries and change numbers are handed out in commit order across processes.
      CREATE TABLE registry_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        audit_seq bigint NOT NULL,
        audit_hash text NOT NULL,
        change_seq bigint NOT NULL,
        crl_number bigint NOT NULL
      );
      INSERT INTO registry_head VALUES (1, 0, repeat('0', 64), 0, 0);

      CREATE TABLE devices (
        id text COLLATE "C" PRIMARY KEY,
        state text NOT NULL,
        model text NOT NULL,
        cert_not_after text NOT NULL,
        record json NOT NULL
      );
      CREATE INDEX devices_by_state ON devices (state, id);

      CREATE TABLE certificates (
        serial text COLLATE "C" PRIMARY KEY,
        device_id text COLLATE "C" NOT NULL,
        issued_at text COLLATE "C" NOT NULL,
        status text NOT NULL,
        record json NOT NULL
      );
      CREATE INDEX certificates_by_device ON certificates (device_id, issued_at, serial);
      CREATE INDEX certificates_revoked ON certificates (serial) WHERE status = 'revoked';

      CREATE TABLE audit (
        seq bigint PRIMARY KEY,
        device_id text COLLATE "C",
        entry json NOT NULL
      );
      CREATE INDEX audit_by_device ON audit (device_id, seq) WHERE device_id IS NOT NULL;

      -- Device, trust and credential changes, numbered: NOTIFY carries the number, and a process
      -- that missed notifications (a dropped connection, a database restart) reads on from the
      -- last number it saw. Old rows are pruned (PostgresRegistryOptions.changeRetentionHours).
      CREATE TABLE changes (
        seq bigint PRIMARY KEY,
        kind text NOT NULL,
        payload json NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE trusts (name text COLLATE "C" PRIMARY KEY, record json NOT NULL);
      CREATE TABLE batches (id text COLLATE "C" PRIMARY KEY, record json NOT NULL);
      CREATE TABLE credentials (
        serial text COLLATE "C" PRIMARY KEY,
        kind text NOT NULL,
        name text NOT NULL,
        record json NOT NULL
      );
      -- The newest CRL any process signed (one row): every process serves it.
      CREATE TABLE crl (
        id smallint PRIMARY KEY CHECK (id = 1),
        number bigint NOT NULL,
        record json NOT NULL
      );
      CREATE TABLE presence (device_id text COLLATE "C" PRIMARY KEY, record json NOT NULL);
      CREATE TABLE device_events (
        device_id text COLLATE "C" NOT NULL,
        first text COLLATE "C" NOT NULL,
        kind text COLLATE "C" NOT NULL,
        code text COLLATE "C" NOT NULL,
        record json NOT NULL,
        PRIMARY KEY (device_id, first, kind, code)
      );
    `,
  },
];

/** The schema version this build of fleetgate writes. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((newest, migration) => Math.max(newest, migration.version), 0);
