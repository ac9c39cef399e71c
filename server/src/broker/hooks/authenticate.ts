import type { AuthenticateError, Client } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { TokenBucket } from '../../rate-limiter.ts';
import { BrokerError } from '../errors.ts';
import { peerIdentity } from '../peer-identity.ts';
import { rulesForDevice, topicMatches } from '../topic-acl.ts';
import type { HookContext } from './context.ts';

/**
 * CONNECT authentication, deny by default. Identity comes from the verified peer certificate
 * (never from username/password, which are ignored); the client id must equal it; the device and
 * the certificate serial are checked against the registry's in-memory view on every CONNECT,
 * including TLS session resumptions, which reuse the earlier handshake's verification.
 */
export function createAuthenticate(context: HookContext) {
  const limits = context.config.limits;
  return (client: Client, _username: Readonly<string | undefined>, _password: Readonly<Buffer | undefined>, done: (error: AuthenticateError | null, success: boolean | null) => void): void => {
    const pending = context.sessions.pending.get(client);
    context.sessions.pending.delete(client);
    try {
      if (context.connectedClients() >= limits.maxConnections) {
        throw new BrokerError('BROKER_TOO_MANY_CONNECTIONS', `${limits.maxConnections} connections`);
      }
      const identity = peerIdentity(client.conn as TLSSocket, context.issuing);
      if (client.id !== identity.deviceId) {
        throw new BrokerError('BROKER_CLIENT_ID_MISMATCH', `client id "${client.id}", certificate ${identity.deviceId}`);
      }
      const device = context.access.device(identity.deviceId);
      if (!device) throw new BrokerError('BROKER_DEVICE_UNKNOWN', identity.deviceId);
      if (device.state === 'revoked') throw new BrokerError('BROKER_DEVICE_REVOKED', identity.deviceId);
      if (device.state === 'disabled') throw new BrokerError('BROKER_DEVICE_DISABLED', identity.deviceId);
      if (context.access.isRevoked(identity.serial)) throw new BrokerError('BROKER_CERT_REVOKED', identity.serial);
      const keepalive = pending?.keepalive ?? 0;
      if (keepalive < limits.keepaliveMinSeconds || keepalive > limits.keepaliveMaxSeconds) {
        throw new BrokerError('BROKER_KEEPALIVE', `${keepalive}s requested; allowed ${limits.keepaliveMinSeconds}-${limits.keepaliveMaxSeconds}s`);
      }
      const rules = rulesForDevice(context.config.topics, identity.deviceId, device.model);
      if (pending?.willTopic !== undefined && !rules.publish.some((filter) => topicMatches(filter, pending.willTopic as string))) {
        throw new BrokerError('BROKER_WILL_DENIED', pending.willTopic);
      }
      context.sessions.set(client, {
        identity,
        model: device.model,
        rules,
        messages: new TokenBucket(limits.messagesPerSecond, limits.messageBurst),
        peer: (client.conn as TLSSocket).remoteAddress,
      });
      done(null, true);
    } catch (error) {
      if (!(error instanceof BrokerError)) {
        context.logger.error({ err: error, clientId: client.id }, 'authentication failed unexpectedly');
        done(Object.assign(new Error('not authorized'), { returnCode: 5 }) as AuthenticateError, false);
        return;
      }
      context.refused(error.code);
      context.logger.info({ code: error.code, reason: error.message, clientId: client.id, peer: (client.conn as TLSSocket).remoteAddress }, 'connection refused');
      done(Object.assign(new Error(error.message), { returnCode: error.returnCode }) as AuthenticateError, false);
    }
  };
}
