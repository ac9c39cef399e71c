import type { Packet } from 'mqtt-packet';
import { connect, type DetailedPeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { connectPacket, DISCONNECT, MqttFramer } from './mqtt-wire.ts';

/** Where a broker under test listens: always loopback. */
export interface BrokerAddress {
  readonly host: '127.0.0.1';
  readonly port: number;
}

/** A client identity: its MQTT client id and its TLS context, built once before any timed phase. */
export interface ClientIdentity {
  readonly clientId: string;
  /** Certificate chain, key and the pinned root, parsed once (~1.5 ms per context). */
  readonly secureContext: SecureContext;
}

/** How one connection is opened. */
export interface OpenOptions {
  readonly keepaliveSeconds: number;
  /** From `tls.connect` to CONNACK; beyond it the attempt fails with `timeout`. */
  readonly timeoutMs: number;
  /** Source address (127.0.0.x): one source address gives about 28k connections to one port. */
  readonly localAddress?: string;
  /**
   * `chain-and-name` (the default): Node's full check, the chain to the pinned root and the
   * server's name. `chain`: the chain only, for load connections to a listener whose name was
   * checked when it became ready (see waitForConnack), because the name check is the single
   * most expensive step of a client connection in Node.
   */
  readonly serverCheck?: 'chain' | 'chain-and-name';
  /** A TLS session from an earlier connection of this identity, offered for resumption. */
  readonly session?: Buffer;
  /** Called with each session (TLS 1.3: each ticket) the server hands out, to offer it next time. */
  readonly onSession?: (session: Buffer) => void;
}

/** A connection attempt as the load generator counts it. Never an exception: failures are data. */
export type OpenResult =
  | {
      readonly ok: true;
      readonly connection: MqttConnection;
      /** `tls.connect` to the end of the TLS handshake. */
      readonly handshakeMs: number;
      /** `tls.connect` to CONNACK. */
      readonly connackMs: number;
      /** The handshake resumed the offered session (no certificates, no signatures). */
      readonly resumed: boolean;
    }
  | {
      readonly ok: false;
      readonly failure: string;
      readonly elapsedMs: number;
      /** The TLS handshake had completed: the broker refused or dropped the MQTT session, not the socket. */
      readonly afterHandshake: boolean;
    };

/**
 * One MQTT connection over node:tls. A phase drives it by setting the handlers: the framer
 * hands over each PUBACK, each PUBLISH and every other packet as it is read.
 */
export class MqttConnection {
  onPuback: (messageId: number) => void = () => undefined;
  onPublish: (messageId: number | undefined) => void = () => undefined;
  onPacket: (packet: Packet) => void = () => undefined;
  onClose: () => void = () => undefined;
  private closedFlag = false;
  private errorCode: string | undefined;
  private readonly closed: Promise<void>;

  constructor(readonly socket: TLSSocket) {
    const framer = new MqttFramer({
      puback: (id) => this.onPuback(id),
      publish: (messageId) => this.onPublish(messageId),
      packet: (packet) => this.onPacket(packet),
      error: (error) => {
        this.errorCode = `protocol error: ${error.message}`;
        socket.destroy();
      },
    });
    // Paused mode: Node's TLS layer pushes every TLS record separately, and a broker that puts
    // each PUBACK in its own record (mosquitto) would cost a 'data' event per message; 'readable'
    // fires once per batch of records and read() hands them over together.
    socket.on('readable', () => {
      let chunk = socket.read() as Buffer | null;
      while (chunk !== null) {
        framer.push(chunk);
        chunk = socket.read() as Buffer | null;
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.errorCode ??= error.code ?? error.message;
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedFlag = true;
        this.onClose();
        resolve();
      }),
    );
  }

  /** Whether the socket has closed (the broker hung up, or we did). */
  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** The first socket error, if any (ECONNRESET ...). */
  get error(): string | undefined {
    return this.errorCode;
  }

  /** TLS version and cipher suite negotiated. */
  get protocol(): string {
    return `${this.socket.getProtocol() ?? 'unknown'} ${this.socket.getCipher()?.standardName ?? ''}`.trim();
  }

  /** Writes bytes; false when the socket buffer is above its high-water mark (wait for 'drain'). */
  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  /** DISCONNECT (a clean close: no will), then waits for the socket to close, at most `timeoutMs`. */
  async disconnect(timeoutMs = 5_000): Promise<void> {
    if (this.closedFlag) return;
    this.socket.end(DISCONNECT);
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    await this.closed;
    clearTimeout(timer);
  }

  /** Resolves when the socket has closed. */
  whenClosed(): Promise<void> {
    return this.closed;
  }
}

/** What the load generator's sockets answer to getPeerCertificate (see openConnection). */
const UNUSED_PEER_CERTIFICATE = {} as DetailedPeerCertificate;

/**
 * A fresh TLS connection (a full handshake unless `options.session` is offered and accepted), CONNECT with
 * the identity's client id and a clean session, and the CONNACK. Resolves with the timings or
 * with why it failed: a CONNACK return code, a socket error, a close before CONNACK, a timeout.
 */
export function openConnection(address: BrokerAddress, identity: ClientIdentity, options: OpenOptions): Promise<OpenResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let handshakeMs = Number.NaN;
    let settled = false;
    const socket: TLSSocket = connect({
      host: address.host,
      port: address.port,
      secureContext: identity.secureContext,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(options.serverCheck === 'chain' ? { checkServerIdentity: () => undefined } : {}),
      ...(options.session ? { session: options.session } : {}),
    });
    if (options.onSession) socket.on('session', options.onSession);
    if (options.serverCheck === 'chain') {
      // Node's client calls getPeerCertificate(true) before checkServerIdentity, which turns the
      // server's chain into JS objects with three fingerprints per certificate: 0.5 ms per
      // connection here, a quarter of the load generator's CPU in a storm (getPeerX509Certificate
      // for a cheaper name check still costs 0.25 ms). OpenSSL has verified the chain against
      // the pinned root by then; the placeholder is never read.
      socket.getPeerCertificate = () => UNUSED_PEER_CERTIFICATE;
    }
    // Nagle would hold back the client's last handshake flight (~40 ms per TLS 1.3 handshake).
    // Set before the TCP connect, libuv applies it when the socket is created.
    socket.setNoDelay(true);
    const connection = new MqttConnection(socket);
    const finish = (result: OpenResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!result.ok) socket.destroy();
      resolve(result);
    };
    const fail = (failure: string): void => finish({ ok: false, failure, elapsedMs: performance.now() - started, afterHandshake: !Number.isNaN(handshakeMs) });
    const timer = setTimeout(() => fail('timeout'), options.timeoutMs);
    socket.once('secureConnect', () => {
      handshakeMs = performance.now() - started;
      socket.write(connectPacket(identity.clientId, options.keepaliveSeconds));
    });
    connection.onPacket = (packet) => {
      if (packet.cmd !== 'connack') {
        fail(`unexpected ${packet.cmd} before CONNACK`);
        return;
      }
      if (packet.returnCode !== 0) {
        fail(`CONNACK ${packet.returnCode ?? 'without return code'}`);
        return;
      }
      connection.onPacket = () => undefined;
      finish({ ok: true, connection, handshakeMs, connackMs: performance.now() - started, resumed: socket.isSessionReused() });
    };
    connection.onClose = () => fail(connection.error ?? (Number.isNaN(handshakeMs) ? 'closed during TLS handshake' : 'closed before CONNACK'));
  });
}
