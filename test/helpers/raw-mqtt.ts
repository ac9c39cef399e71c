import { once } from 'node:events';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import type { Credential } from './fleet.ts';
import { withDeadline } from './wait.ts';

/** What one raw MQTT CONNECT over TLS came to. */
export interface RawConnect {
  /** The CONNACK return code. */
  readonly returnCode: number;
  /** Whether the TLS handshake resumed the session offered. */
  readonly resumed: boolean;
  /** The newest session ticket the server sent on this connection (none on a refused or resumed one, usually). */
  readonly session: Buffer | undefined;
}

export interface RawConnectOptions {
  /** Wait for a ticket after a resumed handshake too (the server renews a ticket of the previous key window). */
  readonly renewedTicket?: boolean;
}

/**
 * One MQTT CONNECT over TLS, optionally resuming a TLS session; returns the CONNACK code, whether
 * the session was resumed and the ticket the server sent. The socket is closed afterwards.
 */
export async function rawConnect(target: { port: number; rootPem: string }, credential: Credential, session?: Buffer, options: RawConnectOptions = {}): Promise<RawConnect> {
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: target.port, ca: target.rootPem, cert: credential.certPem, key: credential.keyPem, servername: 'localhost', session });
  try {
    let ticket: Buffer | undefined;
    socket.on('session', (data: Buffer) => (ticket = data));
    socket.on('error', () => undefined);
    await withDeadline(once(socket, 'secureConnect'), { what: 'the TLS handshake' });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const connack = new Promise<number>((resolve) => parser.on('packet', (packet: { cmd: string; returnCode?: number }) => packet.cmd === 'connack' && resolve(packet.returnCode ?? -1)));
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.write(mqttPacket.generate({ cmd: 'connect', clientId: credential.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
    const returnCode = await withDeadline(connack, { what: 'a CONNACK' });
    const resumed = socket.isSessionReused();
    // TLS 1.3 tickets arrive after the handshake: wait for one after a full handshake that was
    // accepted (a refused connection is closed by the server; a resumed one gets no new ticket).
    if (returnCode === 0 && (!resumed || options.renewedTicket === true) && !ticket) await withDeadline(once(socket, 'session'), { what: 'a TLS session ticket' });
    return { returnCode, resumed, session: ticket };
  } finally {
    socket.destroy();
  }
}
