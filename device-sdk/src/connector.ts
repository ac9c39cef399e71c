import { EventEmitter } from 'node:events';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { SecureContext } from 'node:tls';
import { connackRefusalCode, type ConnackRefusalCode } from './errors.ts';
import { FleetgateError } from './fleetgate-error.ts';

/** Why a connection attempt failed. */
export type ConnectFailure =
  | { readonly kind: 'refused'; readonly returnCode: number; readonly message: string }
  | { readonly kind: 'network'; readonly message: string };

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
}

interface ConnectorEvents {
  /** The connection dropped without being asked to. */
  lost: [reason: string];
  message: [topic: string, payload: Buffer];
}

/**
 * One MQTT.js client for the device's whole life. MQTT.js' own reconnect is off (fixed
 * interval, no jitter); every (re)connection goes through `connect`, which keeps the client's
 * message stores so in-flight QoS 1 messages are resent on the next connection, and swaps the
 * TLS credential in place for renewals.
 */
export class MqttConnector extends EventEmitter<ConnectorEvents> {
  private client: MqttClient | undefined;
  private expectingClose = false;
  private connected = false;

  constructor(
    private readonly url: string,
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

  /** Connects, or reconnects with another credential; resolves on CONNACK 0. */
  async connect(credential: ConnectCredential): Promise<void> {
    const tls = { secureContext: credential.secureContext };
    let client = this.client;
    if (!client) {
      client = connect(this.url, {
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
      await this.reconnect(client, tls);
    }
    return this.connack(client);
  }

  /**
   * Reconnects the existing client with (possibly new) TLS material. MQTT.js' `reconnect()` on a
   * connected client goes through `end()`, which closes the message stores; instead the stream
   * is cut here, then `reconnect` reuses the open stores, so QoS 1 messages still waiting for
   * PUBACK are sent again on the new connection and their promises resolve.
   */
  private async reconnect(client: MqttClient, tls: Record<string, unknown>): Promise<void> {
    Object.assign(client.options, tls);
    if (this.connected) {
      this.expectingClose = true;
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.stream.destroy();
      await closed;
    }
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
      const onError = (error: Error & { code?: number | string }): void => {
        if (typeof error.code === 'number' && error.code > 0) {
          cleanup();
          reject(new ConnectError({ kind: 'refused', returnCode: error.code, message: error.message }));
        }
      };
      const onClose = (): void => {
        cleanup();
        reject(new ConnectError({ kind: 'network', message: 'the connection closed before CONNACK' }));
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
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    if (client) await client.endAsync(force);
  }
}
