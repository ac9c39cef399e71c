import type { Client, ConnectPacket } from 'aedes';
import type { HookContext } from './context.ts';

/**
 * MQTT CONNECT received: remember what authenticate must check (keepalive, will topic). The
 * decision itself is taken in authenticate, because only there can aedes answer with a CONNACK
 * return code; a preConnect refusal closes the socket without telling the device why.
 */
export function createPreConnect(context: HookContext) {
  return (client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void => {
    context.sessions.pending.set(client, { keepalive: packet.keepalive ?? 0, willTopic: packet.will?.topic });
    callback(null, true);
  };
}
