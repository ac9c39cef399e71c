import type { Client, Subscription } from 'aedes';
import { BrokerError } from '../errors.ts';
import { filterWithin, topicProblem } from '../topic-acl.ts';
import { afterConnect } from './after-connect.ts';
import type { HookContext } from './context.ts';

/**
 * SUBSCRIBE authorization, deny by default: the filter, wildcards included, must stay inside one
 * of the device's subscribe rules. A refusal answers SUBACK 0x80 for that filter (MQTT-3.9.3) and
 * keeps the connection, so one bad filter does not cost a device its session.
 *
 * A session holds at most `broker.limits.maxSubscriptionsPerClient` filters (each costs the broker
 * memory in aedes' topic tree); a new filter beyond it gets SUBACK 0x80 too
 * (`BROKER_SUBSCRIPTION_LIMIT`), a re-subscription to a held filter replaces it (MQTT-3.8.4-3) and
 * is granted. UNSUBSCRIBE frees the place (see the broker's 'unsubscribe' listener).
 */
export function createAuthorizeSubscribe(context: HookContext) {
  const authorizeSubscribe = (client: Client, subscription: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void => {
    if (!context.sessions.get(client) && afterConnect(client, () => authorizeSubscribe(client, subscription, callback))) return;
    const session = context.sessions.get(client);
    const problem = topicProblem(subscription.topic, 'filter', context.config.limits.maxTopicLevels);
    const allowed = session !== undefined && problem === undefined && session.grants.rulesFor(session.subject).subscribe.some((rule) => filterWithin(subscription.topic, rule));
    const limit = context.config.limits.maxSubscriptionsPerClient;
    let error: BrokerError;
    if (!allowed) {
      error = new BrokerError(problem ? 'BROKER_TOPIC_INVALID' : 'BROKER_SUBSCRIBE_DENIED', problem ?? subscription.topic);
    } else if (session.subscriptions?.has(subscription.topic) || (session.subscriptions?.size ?? 0) < limit) {
      // Counted here, not from aedes' client.subscriptions: the filters of one SUBSCRIBE are
      // authorized before any of them is added there.
      (session.subscriptions ??= new Set()).add(subscription.topic);
      callback(null, subscription);
      return;
    } else {
      error = new BrokerError('BROKER_SUBSCRIPTION_LIMIT', `${session.subscriptions?.size ?? 0} subscriptions held; at most ${limit}`);
    }
    context.refused(error.code);
    context.logger.info({ code: error.code, reason: error.message, clientId: client.id }, 'subscription refused');
    callback(null, null);
  };
  return authorizeSubscribe;
}
