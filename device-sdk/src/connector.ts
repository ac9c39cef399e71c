import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { SecureContext, TLSSocket } from 'node:tls';
import { connackRefusalCode, type ConnackRefusalCode } from './errors.ts';
import { FleetgateError } from './fleetgate-error.ts';
import { DEFAULT_PORTS } from './protocol.ts';
import { checkServerNameOnLeaf } from './server-identity.ts';
import { TlsSessionCache } from './tls-sessions.ts';

/** Why a connection attempt failed. */
export type ConnectFailure =
  | { readonly kind: 'refused'; readonly returnCode: number; readonly message: string }
  /**
   * No CONNACK. `handshake` false: the connection closed before the TLS handshake completed, which
   * is how a broker sheds load (or a node is down): retry later, never a credential problem.
   */
  | { readonly kind: 'network'; readonly message: string; readonly handshake?: boolean };

/**
 * A connection attempt failed: `CONNACK_<n>` for a broker refusal (`SDK_REFUSED` for a return
 * code MQTT 3.1.1 reserves), `SDK_NETWORK` when the connection closed before any CONNACK.
 */
export class ConnectError extends FleetgateError<ConnackRefusalCode | 'SDK_REFUSED' | 'SDK_NETWORK'> {
  override readonly name = 'ConnectError';
  constructor(readonly failure: ConnectFailure) {
    super(failure.kind === 'network' ? 'SDK_NETWORK' : (connackRefusalCode(failure.returnCode) ?? 'SDK_REFUSED'), failure.message);
  }
}

/** What the connector presents in TLS: a context built from the credential and the pinned root. */
export interface ConnectCredential {
  readonly secureContext: SecureContext;
  /**
   * The SHA-256 fingerprint of the credential's certificate: its TLS session is kept under it and
   * offered on the next connection with the same credential. Absent: no session is kept.
   */
  readonly fingerprint?: string;
}

interface ConnectorEvents {
  /** The connection dropped without being asked to. */
  lost: [reason: string];
  message: [topic: string, payload: Buffer];
}

/**
 * Where MQTT.js' TLS stream builder connects to, from an mqtts:// URL: it reads these options of
 * the client each time it opens a stream. `servername` (SNI) follows a host name, and is cleared
 * for an IP address (the builder then sets none).
 */
function brokerAddress(url: string): Pick<IClientOptions, 'host' | 'hostname' | 'port' | 'servername'> {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, hostname: host, port: parsed.port === '' ? DEFAULT_PORTS.mqtt : Number(parsed.port), servername: isIP(host) === 0 ? host : undefined };
}

/**
 * One MQTT.js client for the device's whole life. MQTT.js' own reconnect is off (fixed
 * interval, no jitter); every (re)connection goes through `connect`, which keeps the client's
 * message stores so in-flight QoS 1 messages are resent on the next connection, swaps the TLS
 * credential in place for renewals, and the broker address when the device moves to another
 * node of a cluster (its subscriptions are made again there: MQTT.js resubscribes).
 */
export class MqttConnector extends EventEmitter<ConnectorEvents> {
  private client: MqttClient | undefined;
  /** The graceful end under way, until it completes: a forced end cuts it short. */
  private ending: { readonly cut: () => void } | undefined;
  /** The broker the client connects to. */
  private url: string | undefined;
  private expectingClose = false;
  private connected = false;
  private readonly sessions = new TlsSessionCache();
  /** Whether the TLS handshake of the current connection attempt completed, and resumed a session. */
  private handshake: { done: boolean; resumed: boolean } = { done: false, resumed: false };

  constructor(
    private readonly clientId: string,
    private readonly root: string,
    private readonly extra: Partial<IClientOptions>,
  ) {
    super();
  }

  /** The live client (for publish/subscribe), if any. */
  get mqtt(): MqttClient | undefined {
    return this.client;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Whether the current connection resumed a TLS session (no certificate exchange). */
  get resumed(): boolean {
    return this.connected && this.handshake.resumed;
  }

  /** Connects to `url`, or reconnects with another credential or to another broker; resolves on CONNACK 0. */
  async connect(credential: ConnectCredential, url: string): Promise<void> {
    const { fingerprint } = credential;
    // Set every time (undefined included): a session of another credential must never be offered.
    const tls = { secureContext: credential.secureContext, session: fingerprint === undefined ? undefined : this.sessions.get(fingerprint) };
    if (fingerprint !== undefined) this.sessions.keepOnly(fingerprint);
    let client = this.client;
    if (!client) {
      client = connect(url, {
        clientId: this.clientId,
        ca: this.root,
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        keepalive: 60,
        ...this.extra,
        ...tls,
      });
      this.client = client;
      this.wire(client);
    } else {
      await this.reconnect(client, url === this.url ? tls : { ...tls, ...brokerAddress(url) });
    }
    // MQTT.js built the attempt's TLS stream synchronously, in connect() or reconnect().
    this.watchTls(client, fingerprint);
    this.url = url;
    try {
      await this.connack(client);
    } catch (error) {
      // A refusal may be about what the session carries (its certificate): the next attempt makes
      // a full handshake. A connection lost before the handshake says nothing about the session.
      if (fingerprint !== undefined && error instanceof ConnectError && error.failure.kind === 'refused') this.sessions.drop(fingerprint);
      throw error;
    }
  }

  /** Notes the handshake of the attempt's stream, and keeps the tickets the server sends. */
  private watchTls(client: MqttClient, fingerprint: string | undefined): void {
    const handshake = { done: false, resumed: false };
    this.handshake = handshake;
    const stream = client.stream as Partial<TLSSocket> | undefined;
    if (typeof stream?.once !== 'function' || typeof stream.on !== 'function') return;
    // A custom check (in the MQTT options) may want the chain: Node's own then.
    if (!('checkServerIdentity' in this.extra) && typeof stream.getPeerCertificate === 'function') checkServerNameOnLeaf(stream as TLSSocket);
    stream.once('secureConnect', () => {
      handshake.done = true;
      handshake.resumed = stream.isSessionReused?.() ?? false;
    });
    // TLS 1.3 tickets arrive after the handshake, often more than one: the newest is kept.
    if (fingerprint !== undefined) stream.on('session', (session: Buffer) => this.sessions.set(fingerprint, session));
  }

  /**
   * Reconnects the existing client with (possibly new) TLS material or broker address. MQTT.js'
   * `reconnect()` on a connected client goes through `end()`, which closes the message stores;
   * instead the stream is cut here, then `reconnect` reuses the open stores, so QoS 1 messages
   * still waiting for PUBACK are sent again on the new connection and their promises resolve.
   */
  private async reconnect(client: MqttClient, options: Record<string, unknown>): Promise<void> {
    Object.assign(client.options, options);
    if (this.connected) {
      this.expectingClose = true;
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.stream.destroy();
      await closed;
    }
    // end() ran while the old connection closed: MQTT.js would reconnect an ended client, and
    // nobody would hold (or ever close) that connection.
    if (this.client !== client) throw new ConnectError({ kind: 'network', message: 'the connector was ended while it reconnected', handshake: false });
    client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
  }

  /** Resolves on CONNACK 0; rejects on a refusal or a connection that closes first. */
  private connack(client: MqttClient): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        client.off('connect', onConnect);
        client.off('error', onError);
        client.off('close', onClose);
      };
      const onConnect = (): void => {
        cleanup();
        resolve();
      };
      // What went wrong on the socket (refused, reset, TLS), named when it closes.
      let cause = '';
      let causeCode: string | undefined;
      const onError = (error: Error & { code?: number | string }): void => {
        if (typeof error.code === 'number' && error.code > 0) {
          cleanup();
          reject(new ConnectError({ kind: 'refused', returnCode: error.code, message: error.message }));
        } else {
          cause ||= `: ${error.message}`;
          causeCode ??= typeof error.code === 'string' ? error.code : '';
        }
      };
      const handshake = this.handshake;
      const onClose = (): void => {
        cleanup();
        // Closed or reset by the server before the handshake, not a certificate the device
        // rejected: how a node sheds load (or goes down).
        const shed = !handshake.done && (causeCode === undefined || causeCode === '' || causeCode === 'ECONNRESET' || causeCode === 'EPIPE');
        const hint = shed ? ' (before the TLS handshake completed: the broker may be shedding load; retry later)' : '';
        reject(new ConnectError({ kind: 'network', message: `the connection closed before CONNACK${cause}${hint}`, handshake: handshake.done }));
      };
      client.on('connect', onConnect);
      client.on('error', onError);
      client.on('close', onClose);
    });
  }

  private wire(client: MqttClient): void {
    client.on('connect', () => {
      this.connected = true;
      this.expectingClose = false;
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
    // Errors surface through connect() and 'close'; without a listener MQTT.js would throw.
    client.on('error', () => undefined);
    client.on('close', () => {
      const wasConnected = this.connected;
      this.connected = false;
      if (wasConnected && !this.expectingClose) this.emit('lost', 'connection closed');
    });
  }

  /** Closes the connection for good (no will, in-flight messages flushed when `force` is false). */
  async end(force = false): Promise<void> {
    // A forced end also reaches a client still ending gracefully (waiting for the broker to
    // acknowledge what is in flight): MQTT.js ignores a second end() once one is under way, so the
    // connection is cut here and the graceful end returns. Without this a device stopped by force
    // during a slow graceful stop kept its connection open for as long as the broker was silent.
    if (force && !this.client && this.ending) {
      this.ending.cut();
      return;
    }
    const client = this.client;
    const wasConnected = this.connected;
    this.client = undefined;
    this.connected = false;
    if (!client) return;
    // Not connected yet (handshake or CONNACK pending): there is nothing in flight to flush, and
    // MQTT.js would hold its DISCONNECT until a CONNACK came, leaving the connection open meanwhile
    // (seen: devices stopped while connecting stayed connected on the broker).
    if (force || !wasConnected) {
      await client.endAsync(true);
      return;
    }
    let cut: () => void = () => undefined;
    const cutShort = new Promise<void>((resolve) => {
      cut = () => {
        client.stream?.destroy();
        resolve();
      };
    });
    const ending = { cut };
    this.ending = ending;
    try {
      await Promise.race([client.endAsync(false), cutShort]);
    } finally {
      if (this.ending === ending) this.ending = undefined;
    }
  }
}
