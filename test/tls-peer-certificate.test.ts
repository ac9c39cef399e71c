import test from 'ava';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { explicit, integer, octetString, sequence } from '../server/src/pki/der.ts';
import { mutualTlsServerOptions } from '../server/src/tls/defaults.ts';
import { peerCertificateDer, sessionPeer } from '../server/src/tls/peer-certificate.ts';
import { makeDataDir, mintDeviceCredential } from './helpers/fleet.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * peerCertificateDer reads the client's leaf from OpenSSL's encoding of the TLS session: it must
 * be, byte for byte, the certificate Node's own reader returns, after full and resumed handshakes,
 * in TLS 1.3 and 1.2, with and without the chain, and nothing when the client sent none.
 */

test('the leaf from the session is the certificate Node reads: full and resumed, TLS 1.3 and 1.2, chain or leaf, none', async (t) => {
  const data = await makeDataDir(t);
  const issuingPem = await readFile(data.layout.authorityCert('issuing'), 'utf8');
  const device = await mintDeviceCredential(data, { id: 'thermostat-0123456789ab', ca: 'issuing' });
  const leafPem = device.certPem.slice(0, device.certPem.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length);
  t.true(device.certPem.length > leafPem.length, 'the device credential holds a chain');
  const seen: { resumed: boolean; protocol: string | null; ours: string | undefined; node: string | undefined }[] = [];
  const server = createServer(mutualTlsServerOptions({ key: await readFile(data.layout.serverKey, 'utf8'), cert: await readFile(data.layout.serverCert, 'utf8'), clientCas: [data.rootPem, issuingPem] }), (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    // Ours first: Node's reader takes the issuer out of the chain it keeps.
    const ours = peerCertificateDer(socket)?.toString('base64');
    seen.push({ resumed: socket.isSessionReused(), protocol: socket.getProtocol(), ours, node: socket.getPeerX509Certificate()?.raw.toString('base64') });
    socket.write('x');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;

  /** A handshake; without `session` to resume, the session it gets (a TLS 1.2 resumption may get none). */
  const handshake = async (options: { cert?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; session?: Buffer }): Promise<Buffer | undefined> => {
    const socket = connect({ host: '127.0.0.1', port, ca: data.rootPem, cert: options.cert, key: options.cert ? device.keyPem : undefined, servername: 'localhost', maxVersion: options.maxVersion, session: options.session });
    socket.on('error', () => undefined);
    const ticket = once(socket, 'session');
    try {
      await withDeadline(once(socket, 'data'), { what: 'the server reading the certificate' });
      return options.session ? undefined : ((await withDeadline(ticket, { what: 'a session' })) as [Buffer])[0];
    } finally {
      socket.destroy();
    }
  };
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    for (const [sent, cert] of [['chain', device.certPem], ['leaf', leafPem]] as const) {
      seen.length = 0;
      const session = await handshake({ cert, maxVersion });
      await handshake({ cert, maxVersion, session });
      const [full, resumed] = seen;
      const what = `${maxVersion}, ${sent}`;
      t.is(full?.protocol, maxVersion, what);
      t.false(full?.resumed, what);
      t.true(resumed?.resumed, `${what}: resumed`);
      t.truthy(full?.ours, what);
      t.is(full?.ours, full?.node, `${what}: full handshake`);
      t.is(resumed?.ours, resumed?.node, `${what}: resumed handshake`);
      t.is(resumed?.ours, full?.ours, `${what}: the same certificate`);
    }
  }
  seen.length = 0;
  await handshake({});
  t.deepEqual(seen, [{ resumed: false, protocol: 'TLSv1.3', ours: undefined, node: undefined }], 'no client certificate');
});

test('a session encoding of another shape is unknown (the caller asks Node instead); one without a peer field has no certificate', async (t) => {
  const data = await makeDataDir(t);
  const server = createServer({ key: await readFile(data.layout.serverKey, 'utf8'), cert: await readFile(data.layout.serverCert, 'utf8') }, (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    socket.write('x');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  // The client's session: OpenSSL encodes it the same way, its peer being the server.
  const socket = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, ca: data.rootPem, servername: 'localhost' });
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  const [session] = (await withDeadline(once(socket, 'session'), { what: 'a session' })) as [Buffer];
  const serverLeaf = socket.getPeerX509Certificate()?.raw;
  t.truthy(serverLeaf);

  const read = sessionPeer(Buffer.from(session));
  t.true(read !== 'unknown-format' && read.der?.equals(serverLeaf as Buffer), 'the real encoding: the peer leaf');

  // SEQUENCE header, then version INTEGER 1 (OpenSSL's SSL_SESSION_ASN1_VERSION).
  const versionAt = 2 + ((session[1] as number) & 0x80 ? (session[1] as number) & 0x7f : 0);
  t.deepEqual([...session.subarray(versionAt, versionAt + 3)], [0x02, 0x01, 0x01]);
  const otherVersion = Buffer.from(session);
  otherVersion[versionAt + 2] = 2;
  t.is(sessionPeer(otherVersion), 'unknown-format', 'a version this reader does not know');
  t.is(sessionPeer(session.subarray(0, session.length - 10)), 'unknown-format', 'truncated');
  t.is(sessionPeer(Buffer.alloc(0)), 'unknown-format', 'empty');
  t.is(sessionPeer(Buffer.from('not a session')), 'unknown-format', 'not DER');
  t.is(sessionPeer(sequence(integer(1n), explicit(3, integer(5n)))), 'unknown-format', 'a peer field that holds no certificate');
  t.is(sessionPeer(sequence(integer(1n), explicit(3, Buffer.concat([sequence(integer(1n)), integer(2n)])))), 'unknown-format', 'a peer field with bytes after the certificate');
  t.deepEqual(sessionPeer(sequence(integer(1n), integer(0x0304n), octetString(Buffer.from([1, 2, 3])))), { der: undefined }, 'no peer field: no certificate');
});
