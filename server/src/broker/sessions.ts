import type { Client } from 'aedes';
import type { EventEmitter } from 'node:events';
import type { TopicGrants } from './topic-acl.ts';
import type { PeerIdentity } from './peer-identity.ts';
import type { TokenBucket } from '../rate-limiter.ts';
import type { DropReason } from './device-history.ts';
import { compactListeners } from './socket-end.ts';

/** What the broker knows about an authenticated connection (a device or a backend service). */
export interface DeviceSession {
  readonly identity: PeerIdentity;
  /** Device id, or `service:<client id>`: what revocation and takeover look up. */
  readonly key: string;
  /** Device model, or `service`. */
  readonly model: string;
  /** The topic rules of its model or service, shared by all their sessions (checked for every message and delivery). */
  readonly grants: TopicGrants;
  /** What the rules are checked for: the device id (a service's rules are literal; its client id). */
  readonly subject: string;
  /**
   * Publish rate of this client (backpressure beyond it). Made at its first PUBLISH: a bucket
   * made then is as full as one made at CONNECT and left alone, and a connection that never
   * publishes keeps none (a TokenBucket is 64 bytes and its two fields heap numbers).
   */
  messages?: TokenBucket;
  readonly peer: string | undefined;
  /**
   * Filters this session has been granted (a re-subscription to one of them replaces it,
   * MQTT-3.8.4-3). Made at the first grant: a connection that never subscribes keeps no Set
   * (a Set and its hash table are about 150 bytes).
   */
  subscriptions?: Set<string>;
}

/** What preConnect saw in the CONNECT packet, for authenticate to check. */
export interface PendingConnect {
  readonly keepalive: number;
  readonly willTopic: string | undefined;
}

/**
 * Authenticated sessions by aedes client, and by device id for live revocation. A WeakMap keeps
 * the per-client state off aedes' objects and lets it go with the client.
 */
export class SessionTable {
  private readonly byClient = new WeakMap<Client, DeviceSession>();
  private readonly byDevice = new Map<string, Client>();
  readonly pending = new WeakMap<Client, PendingConnect>();
  private readonly drops = new WeakMap<Client, DropReason>();
  /**
   * Live service sessions, kept as the table changes: the gauges read the counts at every
   * connect and disconnect, and counting the keys took 57 µs per read at 10,000 sessions (grows
   * with the fleet: a storm of N reconnects cost O(N^2)).
   */
  private services = 0;
  /**
   * Authenticated connections aedes has not registered yet, by their socket, with the client of
   * the same key they replaced in `byDevice` (a takeover in progress). aedes reports the end of a
   * connection (`clientDisconnect`) only for a client it registered, so one that closes in
   * between (a device that gave up waiting, under load: found by a reconnect storm) would stay in
   * the table for good, counted as connected, and hide the session it was taking over from
   * revocation. One shared close handler serves every connection (no closure per socket).
   */
  private readonly unregistered = new WeakMap<EventEmitter, { readonly client: Client; readonly replaced: Client | undefined }>();
  private readonly closedBeforeRegistration: (this: EventEmitter) => void;

  constructor() {
    const table = this;
    this.closedBeforeRegistration = function (this: EventEmitter): void {
      const entry = table.unregistered.get(this);
      if (!entry) return;
      table.unregistered.delete(this);
      table.forgetUnregistered(entry.client, entry.replaced);
    };
  }

  /**
   * Files an authenticated client. Until `registered(client)`, its connection closing takes it out
   * again (and gives the key back to the session it was replacing, if that one is still live).
   */
  set(client: Client, session: DeviceSession): void {
    const replaced = this.byDevice.get(session.key);
    this.byClient.set(client, session);
    if (!this.byDevice.has(session.key) && isServiceKey(session.key)) this.services++;
    this.byDevice.set(session.key, client);
    const conn = client.conn as unknown as EventEmitter;
    this.unregistered.set(conn, { client, replaced: replaced === client ? undefined : replaced });
    conn.on('close', this.closedBeforeRegistration);
  }

  /**
   * aedes registered the client: from now on its end comes as `clientDisconnect`. The close
   * listener goes, and the socket's listener arrays are cut back to their length: adding it had
   * grown the 'close' array to room for 19 (168 bytes per held connection, bench:memory).
   */
  registered(client: Client): void {
    const conn = client.conn as unknown as EventEmitter;
    if (!this.unregistered.delete(conn)) return;
    conn.removeListener('close', this.closedBeforeRegistration);
    compactListeners(conn);
  }

  private forgetUnregistered(client: Client, replaced: Client | undefined): void {
    const session = this.delete(client);
    // The session this one was taking over is still connected: it is the key's live client again.
    if (session && replaced && this.byClient.get(replaced)?.key === session.key && !this.byDevice.has(session.key)) {
      this.byDevice.set(session.key, replaced);
      if (isServiceKey(session.key)) this.services++;
      // It was not taken over after all.
      if (this.drops.get(replaced) === 'takeover') this.drops.delete(replaced);
    }
  }

  get(client: Client): DeviceSession | undefined {
    return this.byClient.get(client);
  }

  /** The live client of a device id or session key (the newest, after a takeover). */
  clientOf(key: string): Client | undefined {
    return this.byDevice.get(key);
  }

  /** Forgets a client; keeps a newer client of the same device. */
  delete(client: Client): DeviceSession | undefined {
    const session = this.byClient.get(client);
    if (session && this.byDevice.get(session.key) === client) {
      this.byDevice.delete(session.key);
      if (isServiceKey(session.key)) this.services--;
    }
    this.byClient.delete(client);
    return session;
  }

  /**
   * Notes why the broker is about to close a client (the device history reads it when the
   * session ends). The first reason stands: a revocation drop is not turned into a takeover.
   */
  closing(client: Client, reason: DropReason): void {
    if (!this.drops.has(client)) this.drops.set(client, reason);
  }

  /** Why the broker closed a client, if it did. */
  closedFor(client: Client): DropReason | undefined {
    return this.drops.get(client);
  }

  /** Live sessions, one per device. */
  *live(): IterableIterator<[Client, DeviceSession]> {
    for (const client of this.byDevice.values()) {
      const session = this.byClient.get(client);
      if (session) yield [client, session];
    }
  }

  /** Live sessions by kind. */
  counts(): { devices: number; services: number } {
    return { devices: this.byDevice.size - this.services, services: this.services };
  }

  get size(): number {
    return this.byDevice.size;
  }
}

/** Service sessions are filed as `service:<client id>` (sessionKey in peer-identity.ts); a device id never has a `:`. */
function isServiceKey(key: string): boolean {
  return key.startsWith('service:');
}
