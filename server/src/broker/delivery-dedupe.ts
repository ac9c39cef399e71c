import type { Client } from 'aedes';

/** A delivery function of an aedes client (`deliverQoS`, `deliver0`). */
type Deliver = (packet: { brokerId?: string | null; brokerCounter?: number; qos?: number }, done: () => void) => void;

/** aedes client internals this module replaces (lib/client.js). */
interface DeliveringClient {
  duplicates: Record<string, number>;
  deliverQoS: Deliver;
  deliver0: Deliver;
  /** fleetgate's: the messages delivered last (broker id and number), set at the first one. */
  recentDeliveries?: string[];
}

/**
 * Deliveries of one message to one client, remembered to drop the second one: the matching
 * subscriptions of one message are served one after the other, in one go, so a few suffice.
 */
const RECENT = 8;

/**
 * Makes a client drop only real duplicates. aedes 1.2 numbers every message per broker
 * (brokerId, brokerCounter) and drops, for each client, a message whose number is not above the
 * last one that client got from the same broker (lib/client.js, `dedupe`): meant for the second
 * delivery of one message to overlapping subscriptions (`devices/#` and `devices/+/telemetry`),
 * it also drops every message that arrives after a younger one. They do: a QoS 1 message is
 * queued for the offline persistent sessions (Redis round trips in a cluster) before it is
 * routed, a QoS 0 message is routed at once, so a backend subscribed to `devices/#` lost the QoS
 * 1 messages that a QoS 0 message of another device (or of the same device) overtook, after
 * their publishers had their PUBACK (aedes issue #994, open). Measured here: 4 devices each
 * interleaving 50 QoS 1 readings with QoS 0 positions, and none of the 200 readings reached a
 * persistent backend on `devices/#` (test/broker-delivery-dedupe.test.ts).
 *
 * Instead: a delivery is a duplicate when the same message (broker id and number) was delivered
 * to the client a moment ago. aedes' own check then sees a counter just below the message's (it
 * passes) or equal to it (a duplicate, handled as aedes handles one). Call it before the client
 * subscribes to anything (its session's subscriptions are restored during CONNECT): the
 * subscriptions hold the delivery functions they found. A client without subscriptions gets no
 * numbered message through these functions, so the broker calls it from authorizeSubscribe, which
 * aedes calls before it takes the functions for a new or restored subscription: a connection
 * that never subscribes pays nothing (before: the `check` closure, two wrappers, their context
 * and the list on every connection; npm run bench:memory). Calling it again does nothing.
 */
export function dedupeExactly(client: Client): void {
  const internals = client as unknown as DeliveringClient;
  if (deduped.has(internals)) return;
  if (typeof internals.deliverQoS !== 'function' || typeof internals.deliver0 !== 'function' || typeof internals.duplicates !== 'object') {
    throw new Error('aedes internals changed: client.deliverQoS, deliver0 or duplicates is missing');
  }
  deduped.add(internals);
  const deliverQoS = internals.deliverQoS;
  const deliver0 = internals.deliver0;
  internals.deliverQoS = (packet, done) => {
    // A message downgraded to QoS 0 goes through deliver0 (this client's, below), checked there.
    if (packet.qos !== 0) check(internals, packet);
    deliverQoS(packet, done);
  };
  internals.deliver0 = (packet, done) => {
    check(internals, packet);
    deliver0(packet, done);
  };
}

/** Clients whose delivery functions {@link dedupeExactly} replaced. */
const deduped = new WeakSet<DeliveringClient>();

/** Sets aedes' counter for this delivery: just below the message's number, or at it for a duplicate. */
function check(client: DeliveringClient, packet: Parameters<Deliver>[0]): void {
  const broker = packet.brokerId;
  const counter = packet.brokerCounter;
  if (!broker || typeof counter !== 'number') return; // not numbered (retained on subscribe): aedes delivers it
  const key = `${broker}\u0000${counter}`;
  const recent = (client.recentDeliveries ??= []);
  if (recent.includes(key)) {
    client.duplicates[broker] = counter;
    return;
  }
  recent.push(key);
  if (recent.length > RECENT) recent.shift();
  client.duplicates[broker] = counter - 1;
}
