import type { Client } from 'aedes';

/**
 * Runs `then` once the client's CONNECT has been decided. MQTT 3.1.1 lets a client send packets
 * right after its CONNECT without waiting for the CONNACK (§3.1.4), and aedes 1.2 queues such
 * packets only while they arrive in the same socket read as the CONNECT: a PUBLISH or SUBSCRIBE of
 * a later read reaches the authorize hooks while `authenticate` is still running, before the
 * session exists (seen in about 3 of 30 tries of a pipelining client). Such a packet waits for the
 * client's 'connected' event here instead of being refused as unauthenticated; if the connection
 * is refused or closes first, `then` is never called and aedes drops the packet with the client.
 */
export function afterConnect(client: Client, then: () => void): boolean {
  if (client.connected) return false;
  const connecting = (client as Client & { connecting?: boolean }).connecting;
  if (!connecting) return false;
  client.once('connected', then);
  return true;
}
