import { KEEPALIVE_SECONDS, type BrokerUnderTest } from './broker-under-test.ts';
import { openConnection, type ClientIdentity, type MqttConnection } from './mqtt-connection.ts';
import { pubackPacket, subscribePacket } from './mqtt-wire.ts';

/** A backend service subscribed to one filter, counting what the broker delivers. */
export interface ServiceSubscriber {
  readonly connection: MqttConnection;
  /** Deliveries so far. */
  delivered(): number;
}

/**
 * Connects the backend service to `broker`, subscribes to `filter` at `qos` and waits for the
 * SUBACK. At QoS 1 every delivery is acknowledged: the PUBACKs of one read go out together in one
 * write, as a real service's client batches them, so the service is not the bottleneck.
 */
export async function subscribeService(broker: BrokerUnderTest, service: ClientIdentity, filter: string, qos: 0 | 1): Promise<ServiceSubscriber> {
  const opened = await openConnection(broker.address, service, { keepaliveSeconds: KEEPALIVE_SECONDS, timeoutMs: 30_000, serverCheck: 'chain' });
  if (!opened.ok) throw new Error(`${broker.kind}: the subscriber could not connect: ${opened.failure}`);
  const { connection } = opened;
  let delivered = 0;
  let owed: number[] = [];
  const flush = (): void => {
    if (owed.length > 0 && !connection.isClosed) connection.write(Buffer.concat(owed.map(pubackPacket)));
    owed = [];
  };
  connection.onPublish = (messageId) => {
    delivered++;
    if (messageId === undefined) return;
    if (owed.length === 0) setImmediate(flush);
    owed.push(messageId);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${broker.kind}: no SUBACK`)), 10_000);
    connection.onPacket = (packet) => {
      if (packet.cmd !== 'suback') return;
      clearTimeout(timer);
      if (packet.granted.includes(128)) reject(new Error(`${broker.kind}: subscription refused (SUBACK 0x80)`));
      else resolve();
    };
    connection.write(subscribePacket(1, filter, qos));
  });
  return { connection, delivered: () => delivered };
}
