import type { Aedes, Client, PublishPacket } from 'aedes';

type AuthorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) => void;
type PublishCallback = (error?: Error) => void;
type Publish = (packet: PublishPacket, client: Client | null, done: PublishCallback) => void;

/**
 * Makes a QoS 1 PUBACK mean "published": aedes 1.2 answers a client's QoS 1 PUBLISH with PUBACK
 * first and publishes afterwards (lib/handlers/publish.js, enqueuePublish). In one process the
 * gap is harmless. In a cluster, publishing is Redis: the message is queued for every offline
 * persistent session, then sent through pub/sub to the other nodes. A node killed in the gap, or
 * a Redis that is away (ioredis holds the commands in memory until it is back), loses a message
 * whose publisher was told it was delivered, and the publisher never sends it again.
 *
 * MQTT-4.3.2-2 lets the receiver send PUBACK once it "has taken ownership" of the message, and
 * nothing earlier: here the authorization hook publishes the message itself once it is
 * authorized, and lets aedes go on (write the PUBACK) only when the publish is done; aedes' own
 * publish of that packet, which follows, is skipped. A publish that fails closes the connection
 * without a PUBACK, and the client sends the message again on its next connection.
 *
 * aedes handles the packets of one socket read together and reads the next chunk when all are
 * done, which already waited for the publish: holding the PUBACK until then costs no throughput.
 */
export function publishBeforePuback(authorize: AuthorizePublish): { authorizePublish: AuthorizePublish; install(aedes: Aedes): void } {
  /** Packets this module published: aedes' own publish of them is skipped once. */
  const published = new WeakSet<PublishPacket>();
  let publish: Publish | undefined;
  return {
    authorizePublish(client, packet, callback) {
      authorize(client, packet, (error) => {
        // Wills (no client) and QoS 0 carry no PUBACK; QoS 2 is acknowledged after PUBREL.
        if (error || !client || packet.qos !== 1 || !publish) {
          callback(error);
          return;
        }
        publish(packet, client, (failed) => {
          if (failed) {
            callback(failed);
            return;
          }
          published.add(packet);
          callback(null);
        });
      });
    },
    install(aedes) {
      const broker = aedes as unknown as { publish: Publish };
      if (typeof broker.publish !== 'function') throw new Error('aedes internals changed: broker.publish is missing');
      const original = broker.publish.bind(aedes);
      publish = original;
      broker.publish = (packet, client, done) => {
        if (typeof client !== 'function' && published.delete(packet)) {
          done();
          return;
        }
        original(packet, client, done);
      };
    },
  };
}
