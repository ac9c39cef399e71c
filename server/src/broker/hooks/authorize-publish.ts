import type { Client, PublishPacket } from 'aedes';
import { TokenBucket } from '../../rate-limiter.ts';
import { BrokerError } from '../errors.ts';
import type { DeviceSession } from '../sessions.ts';
import { quotaOwner } from '../peer-identity.ts';
import { topicProblem } from '../topic-acl.ts';
import { afterConnect } from './after-connect.ts';
import type { HookContext } from './context.ts';

/**
 * PUBLISH authorization, deny by default: the topic must match one of the device's publish
 * rules (its own namespace, plus what its model adds). Retained messages and wills pass through
 * here too. A refused publish closes the connection (MQTT-3.3.5-2 gives 3.1.1 no other way to
 * refuse) and is logged and counted.
 *
 * Retained messages are capped per device and in total (`broker.limits.maxRetained*`). A retained
 * PUBLISH over a cap is refused like any other refused PUBLISH: the connection is closed and the
 * message is neither stored nor delivered. MQTT 3.1.1 leaves no other choice that keeps the spec:
 * a QoS 1/2 retained message must be stored (MQTT-3.3.1-5), so delivering it as non-retained
 * would break the promise, and closing the connection is the refusal MQTT-3.3.5-2 allows. An empty
 * retained payload (a deletion, MQTT-3.3.1-10/11) is always admitted and frees the quota.
 *
 * Rate: each client has a token bucket; when it is empty the callback is delayed, which stops
 * aedes reading from that socket, so a flooding client is slowed by TCP backpressure instead of
 * growing the broker's queues.
 */
export function createAuthorizePublish(context: HookContext) {
  const authorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void => {
    if (!client) {
      // A will published after its client is gone: it was checked when the client connected.
      callback(null);
      return;
    }
    if (!context.sessions.get(client) && afterConnect(client, () => authorizePublish(client, packet, callback))) return;
    const session = context.sessions.get(client);
    const problem = topicProblem(packet.topic, 'name', context.config.limits.maxTopicLevels);
    let error: BrokerError | undefined;
    if (!session) error = new BrokerError('BROKER_PUBLISH_DENIED', 'no authenticated session');
    else if (problem) error = new BrokerError('BROKER_TOPIC_INVALID', problem);
    else if (packet.payload.length > context.config.limits.maxPacketBytes) error = new BrokerError('BROKER_PACKET_TOO_LARGE', `${packet.payload.length} bytes`);
    else if (!session.grants.mayPublish(packet.topic, session.subject)) error = new BrokerError('BROKER_PUBLISH_DENIED', packet.topic);
    else if (packet.retain) {
      const verdict = context.retained.admit(quotaOwner(session.identity), packet.topic, packet.payload.length);
      if (verdict.admitted) context.retainedChanged();
      else error = new BrokerError(verdict.code, verdict.detail);
    }
    if (error) {
      context.refused(error.code);
      // aedes closes the connection on this error (MQTT-3.3.5-2): the device history says why.
      context.sessions.closing(client, error.code);
      context.logger.info({ code: error.code, reason: error.message, clientId: client.id, topic: packet.topic }, 'publish refused');
      callback(error);
      return;
    }
    const limits = context.config.limits;
    const wait = ((session as DeviceSession).messages ??= new TokenBucket(limits.messagesPerSecond, limits.messageBurst)).reserve();
    if (wait === 0) callback(null);
    else setTimeout(() => callback(null), Math.ceil(wait * 1000));
  };
  return authorizePublish;
}
