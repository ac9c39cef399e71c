import type { Client, Subscription } from 'aedes';
import { BrokerError } from '../errors.ts';
import { filterWithin, topicProblem } from '../topic-acl.ts';
import type { HookContext } from './context.ts';

/**
 * SUBSCRIBE authorization, deny by default: the filter, wildcards included, must stay inside one
 * of the device's subscribe rules. A refusal answers SUBACK 0x80 for that filter (MQTT-3.9.3) and
 * keeps the connection, so one bad filter does not cost a device its session.
 */
export function createAuthorizeSubscribe(context: HookContext) {
  return (client: Client, subscription: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void => {
    const session = context.sessions.get(client);
    const problem = topicProblem(subscription.topic, 'filter', context.config.limits.maxTopicLevels);
    const allowed = session !== undefined && problem === undefined && session.rules.subscribe.some((rule) => filterWithin(subscription.topic, rule));
    if (allowed) {
      callback(null, subscription);
      return;
    }
    const error = new BrokerError(problem ? 'BROKER_TOPIC_INVALID' : 'BROKER_SUBSCRIBE_DENIED', problem ?? subscription.topic);
    context.refused(error.code);
    context.logger.info({ code: error.code, reason: error.message, clientId: client.id }, 'subscription refused');
    callback(null, null);
  };
}
