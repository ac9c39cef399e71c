import type { Aedes, Client, Subscription } from 'aedes';
import type { Logger } from 'pino';

/** The part of aedes' persistence this module wraps (aedes-persistence 10.x, async API). */
interface SubscriptionStore {
  addSubscriptions(client: Client, subscriptions: Subscription[]): Promise<void>;
}

/**
 * Makes aedes persist only the filters a session was granted, one store at a time per client.
 *
 * Granted only: for a persistent session (clean = false) aedes 1.x stores every filter of a
 * SUBSCRIBE as soon as one of them is granted (handlers/subscribe.js, storeSubscriptions passes
 * `packet.subscriptions`), refused ones included. The persistence's topic tree is what queues
 * QoS 1/2 messages for an offline client, so a refused `devices/<other>/#` would collect another
 * device's messages and deliver them at the next reconnect, and refused filters would pile up in
 * memory without any cap.
 *
 * One at a time: aedes stores once per filter of a SUBSCRIBE, all at once, each time with the
 * whole list. aedes-persistence-redis (cluster mode) then waits for its own broadcast of each
 * store, keyed by client id and first filter (aedes-persistence, broadcastPersistence.js): the
 * second store of the same SUBSCRIBE replaced the first one's waiter, which never returned, and a
 * persistent session that subscribed to two filters at once never got its SUBACK (MQTT.js does
 * exactly that when it subscribes again after a session was lost). Chained per client, each store
 * finishes before the next begins. `settle` bounds a store whose broadcast was lost (cluster mode,
 * see storedOrEchoLost), so that one lost message cannot hold the client's SUBSCRIBEs for ever.
 *
 * Relies on aedes internals (`broker.persistence`); the test suite checks it end to end.
 */
export function persistGrantedOnly(aedes: Aedes, granted: (client: Client, filter: string) => boolean, settle: (stored: Promise<void>, clientId: string) => Promise<void> = (stored) => stored): void {
  const store = (aedes as unknown as { persistence?: SubscriptionStore }).persistence;
  if (!store || typeof store.addSubscriptions !== 'function') throw new Error('aedes internals changed: broker.persistence.addSubscriptions is missing');
  const add = store.addSubscriptions.bind(store);
  /** The last store in progress per client id. */
  const storing = new Map<string, Promise<void>>();
  store.addSubscriptions = (client, subscriptions) => {
    const previous = storing.get(client.id) ?? Promise.resolve();
    const next = previous.then(() => settle(add(client, subscriptions.filter((subscription) => granted(client, subscription.topic))), client.id));
    const settled = next.catch(() => undefined);
    storing.set(client.id, settled);
    void settled.then(() => {
      if (storing.get(client.id) === settled) storing.delete(client.id);
    });
    return next;
  };
}

/** What aedes keeps of a client's subscriptions (lib/handlers/subscribe.js). */
type LiveClient = Client & { readonly subscriptions: Readonly<Record<string, { readonly qos: number }>> };

/**
 * Stores again the subscriptions of the persistent sessions connected to this broker, after the
 * persistence lost them (a cluster's Redis restarted empty). Goes through the persistence's
 * addSubscriptions, so {@link persistGrantedOnly} applies. Resolves with how many sessions.
 */
export async function restoreSessions(aedes: Aedes, logger: Logger): Promise<number> {
  const store = (aedes as unknown as { persistence: SubscriptionStore }).persistence;
  const clients = Object.values((aedes as unknown as { clients: Record<string, LiveClient> }).clients).filter((client) => !client.clean && !client.closed);
  let restored = 0;
  await Promise.all(
    clients.map(async (client) => {
      const subscriptions = Object.entries(client.subscriptions).map(([topic, { qos }]) => ({ topic, qos }) as Subscription);
      if (subscriptions.length === 0) return;
      try {
        await store.addSubscriptions(client, subscriptions);
        restored++;
      } catch (error) {
        logger.warn({ err: error, clientId: client.id }, 'storing a session again failed');
      }
    }),
  );
  logger.info({ sessions: restored }, 'persistent sessions connected to this node stored again in Redis');
  return restored;
}
