import type { Aedes, Client, Subscription } from 'aedes';

/** The part of aedes' persistence this module wraps (aedes-persistence 10.x, async API). */
interface SubscriptionStore {
  addSubscriptions(client: Client, subscriptions: Subscription[]): Promise<void>;
}

/**
 * Makes aedes persist only the filters a session was granted. For a persistent session
 * (clean = false) aedes 1.x stores every filter of a SUBSCRIBE as soon as one of them is granted
 * (handlers/subscribe.js, storeSubscriptions passes `packet.subscriptions`), refused ones
 * included. The persistence's topic tree is what queues QoS 1/2 messages for an offline client,
 * so a refused `devices/<other>/#` would collect another device's messages and deliver them at the
 * next reconnect, and refused filters would pile up in memory without any cap. Relies on aedes
 * internals (`broker.persistence`); the test suite checks it end to end.
 */
export function persistGrantedOnly(aedes: Aedes, granted: (client: Client, filter: string) => boolean): void {
  const store = (aedes as unknown as { persistence?: SubscriptionStore }).persistence;
  if (!store || typeof store.addSubscriptions !== 'function') throw new Error('aedes internals changed: broker.persistence.addSubscriptions is missing');
  const add = store.addSubscriptions.bind(store);
  store.addSubscriptions = (client, subscriptions) => add(client, subscriptions.filter((subscription) => granted(client, subscription.topic)));
}
