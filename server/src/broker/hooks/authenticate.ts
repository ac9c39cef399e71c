import type { AuthenticateError, Client } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { BrokerError } from '../errors.ts';
import { peerIdentity, sessionKey, type PeerIdentity } from '../peer-identity.ts';
import { topicMatches, type TopicGrants } from '../topic-acl.ts';
import type { HookContext } from './context.ts';

/** What may follow `<service>:` in a service client id. */
const SERVICE_INSTANCE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * CONNECT authentication, deny by default. Identity comes from the verified peer certificate
 * (never from username/password, which are ignored); the client id must equal it; the device and
 * the certificate serial are checked against the registry's in-memory view on every CONNECT,
 * including TLS session resumptions, which reuse the earlier handshake's verification.
 */
export function createAuthenticate(context: HookContext) {
  const limits = context.config.limits;
  return (client: Client, _username: Readonly<string | undefined>, _password: Readonly<Buffer | undefined>, done: (error: AuthenticateError | null, success: boolean | null) => void): void => {
    void decide(client, done);
  };

  async function decide(client: Client, done: (error: AuthenticateError | null, success: boolean | null) => void): Promise<void> {
    const pending = context.sessions.pending.get(client);
    context.sessions.pending.delete(client);
    // Set once the certificate chain verified to the issuing CA: only then may a refusal be
    // written under the device's name (its history); an unverified certificate names nobody.
    let verified: PeerIdentity | undefined;
    try {
      if (context.connectedClients() >= limits.maxConnections) {
        throw new BrokerError('BROKER_TOO_MANY_CONNECTIONS', `${limits.maxConnections} connections`);
      }
      let identity = peerIdentity(client.conn as TLSSocket, context.issuing);
      verified = identity;
      // A resumed TLS session carries the verification of its first handshake, validity dates
      // included: a certificate that expired since (its ticket lives up to a day) would pass.
      const now = Date.now();
      if (identity.notAfter <= now) throw new BrokerError('BROKER_CERT_EXPIRED', `expired ${new Date(identity.notAfter).toISOString()}`);
      if (identity.notBefore > now) throw new BrokerError('BROKER_CERT_UNTRUSTED', `not valid before ${new Date(identity.notBefore).toISOString()}`);
      let grants: TopicGrants;
      let model: string;
      if (identity.kind === 'device') {
        if (client.id !== identity.deviceId) {
          throw new BrokerError('BROKER_CLIENT_ID_MISMATCH', `client id "${client.id}", certificate ${identity.deviceId}`);
        }
        // The same id: the session (its key, subject and identity) keeps aedes' string rather than
        // a second copy read from the certificate for as long as it is connected.
        identity = { ...identity, deviceId: client.id };
        const device = context.access.device(identity.deviceId) ?? (await lookup(identity.deviceId));
        if (!device) throw new BrokerError('BROKER_DEVICE_UNKNOWN', identity.deviceId);
        if (device.state === 'revoked') throw new BrokerError('BROKER_DEVICE_REVOKED', identity.deviceId);
        if (device.state === 'disabled') throw new BrokerError('BROKER_DEVICE_DISABLED', identity.deviceId);
        grants = context.grants.forModel(device.model);
        model = device.model;
      } else {
        // Several instances of one service connect at once: `<name>` or `<name>:<instance>`. A
        // `:` never occurs in a device id, so a service cannot take a device's session over, and
        // `backend:` and `backend-eu:` cannot collide; the bare name must not be a device's id.
        const instance = client.id.startsWith(`${identity.service}:`) ? client.id.slice(identity.service.length + 1) : undefined;
        const bareName = client.id === identity.service && context.access.device(client.id) === undefined;
        if (!bareName && !(instance !== undefined && SERVICE_INSTANCE.test(instance))) {
          throw new BrokerError('BROKER_CLIENT_ID_MISMATCH', `client id "${client.id}"; service ${identity.service} connects as ${identity.service} or ${identity.service}:<instance>`);
        }
        const serviceGrants = context.grants.forService(identity.service);
        if (!serviceGrants) throw new BrokerError('BROKER_SERVICE_UNKNOWN', identity.service);
        grants = serviceGrants;
        model = 'service';
      }
      if (context.access.isRevoked(identity.serial)) throw new BrokerError('BROKER_CERT_REVOKED', identity.serial);
      // Checked after revocation, so a revoked old certificate says so rather than "superseded".
      if (identity.kind === 'device' && context.access.standing(identity.deviceId, identity.serial) === 'superseded') {
        throw new BrokerError('BROKER_CERT_SUPERSEDED', `serial ${identity.serial}; device ${identity.deviceId} holds a newer certificate`);
      }
      const keepalive = pending?.keepalive ?? 0;
      if (keepalive < limits.keepaliveMinSeconds || keepalive > limits.keepaliveMaxSeconds) {
        throw new BrokerError('BROKER_KEEPALIVE', `${keepalive}s requested; allowed ${limits.keepaliveMinSeconds}-${limits.keepaliveMaxSeconds}s`);
      }
      const subject = identity.kind === 'device' ? identity.deviceId : client.id;
      if (pending?.willTopic !== undefined && !grants.rulesFor(subject).publish.some((filter) => topicMatches(filter, pending.willTopic as string))) {
        throw new BrokerError('BROKER_WILL_DENIED', pending.willTopic);
      }
      // The device gave up while the checks ran: nothing to file (a closed socket says so no more).
      if ((client.conn as TLSSocket).destroyed) {
        done(Object.assign(new Error('the connection closed during authentication'), { returnCode: 3 }) as AuthenticateError, false);
        return;
      }
      const key = sessionKey(identity, client.id);
      // MQTT-3.1.4-2: aedes closes the session this CONNECT takes over once it is accepted.
      const previous = context.sessions.clientOf(key);
      if (previous && previous !== client) context.sessions.closing(previous, 'takeover');
      context.sessions.set(client, {
        identity,
        key,
        model,
        grants,
        subject,
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
      const peer = (client.conn as TLSSocket).remoteAddress;
      // Devices the registry knows only: an unknown id would grow history nobody can look up.
      if (verified?.kind === 'device' && context.access.device(verified.deviceId)) {
        context.history.refused(verified.deviceId, error.code, peer, error.message);
        context.live?.({ type: 'refused', deviceId: verified.deviceId, time: new Date().toISOString(), code: error.code, ...(peer ? { peer } : {}) });
      }
      context.logger.info({ code: error.code, reason: error.message, clientId: client.id, peer: (client.conn as TLSSocket).remoteAddress }, 'connection refused');
      done(Object.assign(new Error(error.message), { returnCode: error.returnCode }) as AuthenticateError, false);
    }
  }

  /**
   * A device missing from memory, from the registry; a registry that does not answer is CONNACK 3
   * (server unavailable: the device retries), never 5 (which would tell it to give up).
   */
  async function lookup(deviceId: string) {
    try {
      return await context.access.lookup(deviceId);
    } catch (error) {
      context.logger.warn({ err: error, deviceId }, 'registry lookup of an unknown device failed');
      throw new BrokerError('BROKER_REGISTRY_UNAVAILABLE', error instanceof Error ? error.message : String(error));
    }
  }
}
