import type { Aedes, PublishPacket } from 'aedes';
import type { BrokerConfig } from '../config/config.ts';

type Publish = (packet: PublishPacket, client: unknown, done?: (error?: Error) => void) => void;

/**
 * Whether a client could receive aedes' client announcements: only through a subscribe rule
 * whose first level is `$SYS` (wildcards never reach `$` topics, MQTT-4.7.2-1, and `{id}` and
 * `{model}` never start with `$`).
 */
export function announcementsSubscribable(config: Pick<BrokerConfig, 'topics' | 'services'>): boolean {
  const rules = [config.topics.default, ...Object.values(config.topics.models ?? {}), ...Object.values(config.services)];
  return rules.some((rule) => (rule.subscribe ?? []).some((filter) => filter === '$SYS' || filter.startsWith('$SYS/')));
}

/**
 * Stops aedes 1.2 from publishing `$SYS/<broker id>/new/clients` on every CONNECT and
 * `$SYS/<broker id>/disconnect/clients` on every disconnect (aedes.js, _finishRegisterClient and
 * unregisterClient), which it does unconditionally: it has no option for it. Each is a full
 * publish (a packet, the emitter's topic match, aedes' own $SYS listener, the 'publish' event),
 * about 30 µs of a resumed reconnect's CPU (docs/benchmarks.md, "Per-connect work above the
 * Node floor"). Only other nodes of a cluster need the first (it closes a client id's session
 * there), and only a client whose subscribe rules name `$SYS` could see either: the caller
 * installs this for a process alone whose configuration grants no such rule.
 *
 * Returns false, and changes nothing, when the broker has no publish function to wrap (another
 * aedes): a saving, not a feature. Topics aedes no longer uses are simply never matched.
 */
export function skipClientAnnouncements(aedes: Aedes): boolean {
  const broker = aedes as unknown as { id?: unknown; publish?: Publish };
  if (typeof broker.publish !== 'function' || typeof broker.id !== 'string') return false;
  const announced = new Set([`$SYS/${broker.id}/new/clients`, `$SYS/${broker.id}/disconnect/clients`]);
  const publish = broker.publish.bind(aedes) as Publish;
  broker.publish = (packet, client, done) => {
    if (!announced.has(packet.topic)) {
      publish(packet, client, done);
      return;
    }
    // aedes passes its callback in the client's place: publish(packet, noop).
    const callback = typeof client === 'function' ? (client as (error?: Error) => void) : done;
    callback?.();
  };
  return true;
}
