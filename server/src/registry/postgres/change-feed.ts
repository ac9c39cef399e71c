import pg from 'pg';
import type { Logger } from 'pino';
import { CHANGE_CHANNEL, type ChangeRow } from './write-rounds.ts';

/** How many changes one catch-up query reads. */
const CATCH_UP_PAGE = 500;

/**
 * How often the feed reads on from the table even without a notification: a LISTEN connection
 * that died silently (no FIN, no RST: a network partition) would otherwise deliver nothing until
 * TCP keepalive notices. One indexed read per process every few seconds.
 */
const POLL_MS = 5_000;

/**
 * Reconnect delays of the listening connection: doubling from the first to the last, with jitter.
 * The last is short: until the connection is back, a change another process commits (an operator's
 * revocation right after a database restart) waits for it here, and must reach the broker within a
 * second. An attempt against a database that is down costs one refused TCP connection.
 */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 500;

/** What the feed hands each change to, in change order, once. */
export type ChangeSink = (change: ChangeRow) => void;

/**
 * Called when changes were pruned before this process read them (it was away longer than the
 * retention): the registry replays its whole state to the listeners instead.
 */
export type ResyncHandler = () => Promise<void>;

/**
 * Changes committed by any process, delivered to this one in order, exactly once. PostgreSQL's
 * NOTIFY has no replay, so it only says "there is more": the feed reads the `changes` table from
 * the last number it delivered. On every (re)connect of its LISTEN connection, after every commit
 * of this process, and every few seconds, it reads on from there too, so a change made while the
 * connection was down (a database restart, a dropped socket) is delivered when it comes back.
 */
export class ChangeFeed {
  private delivered: number;
  private listener: pg.Client | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Whether the LISTEN connection is up (readiness and metrics). */
  connected = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly connection: pg.ClientConfig,
    startAt: number,
    private readonly sink: ChangeSink,
    private readonly resync: ResyncHandler,
    private readonly logger?: Logger,
  ) {
    this.delivered = startAt;
  }

  /** Number of the last change delivered. */
  get position(): number {
    return this.delivered;
  }

  /** Opens the LISTEN connection (and keeps it open until {@link close}). */
  async start(): Promise<void> {
    await this.connect();
    this.pollTimer = setInterval(() => {
      this.catchUp().catch((error: unknown) => this.logger?.debug({ err: error }, 'registry change poll failed'));
    }, POLL_MS);
    this.pollTimer.unref();
  }

  /**
   * Delivers changes this process just committed, without a read when they follow the last one
   * delivered; otherwise reads on from the table, which holds them too.
   */
  async committed(changes: readonly ChangeRow[]): Promise<void> {
    const first = changes[0];
    if (!first) return;
    if (first.seq === this.delivered + 1) {
      for (const change of changes) this.deliver(change);
      return;
    }
    if (changes.at(-1)!.seq > this.delivered) await this.catchUp();
  }

  /** Reads and delivers every change after the last one delivered (one reader at a time). */
  catchUp(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      try {
        do {
          this.again = false;
          await this.readOn();
        } while (this.again && !this.closed);
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  private async readOn(): Promise<void> {
    for (;;) {
      // Rows already delivered meanwhile (by committed()) are skipped by deliver().
      const from = this.delivered;
      const { rows } = await this.pool.query<{ seq: string; kind: ChangeRow['kind']; payload: unknown }>(
        'SELECT seq, kind, payload FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2',
        [from, CATCH_UP_PAGE],
      );
      const first = rows[0];
      if (!first) return;
      if (Number(first.seq) !== from + 1) {
        // Pruned before we read them: what they said is in the records, replay those.
        this.logger?.warn({ from: from + 1, to: Number(first.seq) - 1 }, 'registry changes were pruned before this process read them; replaying the registry');
        await this.resync();
        const last = (await this.pool.query<{ seq: string | null }>('SELECT max(seq) AS seq FROM changes')).rows[0]?.seq;
        this.delivered = Math.max(this.delivered, Number(last ?? 0));
        return;
      }
      for (const row of rows) this.deliver({ seq: Number(row.seq), kind: row.kind, payload: row.payload });
      if (rows.length < CATCH_UP_PAGE) return;
    }
  }

  private deliver(change: ChangeRow): void {
    if (change.seq <= this.delivered) return;
    this.delivered = change.seq;
    try {
      this.sink(change);
    } catch (error) {
      this.logger?.error({ err: error, seq: change.seq }, 'a registry change listener failed');
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.connection);
    // An error of an idle LISTEN connection is reported here, not thrown: reconnect.
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, undefined));
    client.on('notification', (message) => {
      if (message.channel === CHANGE_CHANNEL) this.catchUp().catch((error: unknown) => this.logger?.warn({ err: error }, 'reading registry changes failed'));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.connected = true;
    this.failures = 0;
    // Whatever was committed while nobody listened. If that read fails, listening is no use:
    // start over, so the read is made again once the database answers.
    await this.catchUp().catch((error: unknown) => this.lost(client, error instanceof Error ? error : new Error(String(error))));
  }

  private lost(client: pg.Client, error: Error | undefined): void {
    if (this.listener !== client) return;
    this.listener = undefined;
    this.connected = false;
    if (this.closed) return;
    this.logger?.warn({ err: error }, 'the registry change feed lost its database connection; reconnecting');
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.failures);
    this.failures++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.logger?.debug({ err: error }, 'registry change feed: reconnect failed');
        this.scheduleReconnect();
      });
    }, ceiling / 2 + Math.random() * (ceiling / 2));
    this.reconnectTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pollTimer);
    const client = this.listener;
    this.listener = undefined;
    this.connected = false;
    await this.reading?.catch(() => undefined);
    await client?.end().catch(() => undefined);
  }
}
