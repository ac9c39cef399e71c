import type { Client } from 'aedes';

/** The per-client tables of an aedes 1.x client (lib/client.js) that this module shares until they are needed. */
interface ClientTables {
  /** Filter -> subscription; written only when a subscription is added (handlers/subscribe.js, addSubs). */
  subscriptions: Record<string, unknown>;
  /** Broker id -> last message number delivered; written only by a delivery (client.js, dedupe). */
  duplicates: Record<string, number>;
  /** Message ids of inbound QoS 2 messages awaiting PUBREL; added to only by a QoS 2 PUBLISH (handlers/publish.js). */
  _inboundInflight: Set<number>;
}

/**
 * What every client without subscriptions holds: empty and frozen, so a write aedes would make
 * without fleetgate's hooks having given the client its own table throws (aedes' modules are
 * strict) instead of sharing state between clients. Reading and deleting an absent key work.
 */
const NO_ENTRIES: Readonly<Record<string, never>> = Object.freeze(Object.create(null) as Record<string, never>);

/** The inflight set of clients that never sent a QoS 2 PUBLISH: empty, and adding to it throws. */
class NoInflight extends Set<number> {
  override add(): this {
    throw new Error('fleetgate: an inbound QoS 2 message before the client got its own inflight set (ownInflight)');
  }
}
const NO_INFLIGHT = new NoInflight();

/** The client's tables when they have the shape aedes 1.2 gives them (and hold nothing yet); otherwise undefined. */
function freshTablesOf(client: Client): ClientTables | undefined {
  const tables = client as unknown as Partial<ClientTables>;
  if (typeof tables.subscriptions !== 'object' || typeof tables.duplicates !== 'object' || !(tables._inboundInflight instanceof Set)) return undefined;
  if (Object.keys(tables.subscriptions).length > 0 || Object.keys(tables.duplicates).length > 0 || tables._inboundInflight.size > 0) return undefined;
  return tables as ClientTables;
}

/**
 * Gives a new client (before its CONNECT) shared empty tables in place of the three aedes makes
 * for every client: two null-prototype objects (about 190 bytes each) and a Set (about 150), kept
 * for the whole connection by devices that never subscribe nor publish at QoS 2. Each client
 * gets its own from {@link ownSubscriptionTables} and {@link ownInflight}, from the hooks aedes
 * calls before it writes to them. Returns false, and changes nothing, when the client does not
 * look as aedes 1.2 makes it (another aedes version): a saving, not a feature, so it is skipped.
 */
export function shareEmptyTables(client: Client): boolean {
  const tables = freshTablesOf(client);
  if (!tables) return false;
  tables.subscriptions = NO_ENTRIES;
  tables.duplicates = NO_ENTRIES;
  tables._inboundInflight = NO_INFLIGHT;
  return true;
}

/**
 * Before a subscription is added (authorizeSubscribe, called by aedes for new and restored
 * subscriptions alike): the client's own subscription and duplicate tables, if it had the
 * shared ones. Only subscriptions deliver to a client, so nothing writes to its duplicates before.
 */
export function ownSubscriptionTables(client: Client): void {
  const tables = client as unknown as Partial<ClientTables>;
  if (tables.subscriptions === NO_ENTRIES) tables.subscriptions = Object.create(null) as Record<string, unknown>;
  if (tables.duplicates === NO_ENTRIES) tables.duplicates = Object.create(null) as Record<string, number>;
}

/** Before a QoS 2 PUBLISH is stored (authorizePublish comes first in aedes' publish handling): the client's own inflight set. */
export function ownInflight(client: Client): void {
  const tables = client as unknown as Partial<ClientTables>;
  if (tables._inboundInflight === NO_INFLIGHT) tables._inboundInflight = new Set();
}
