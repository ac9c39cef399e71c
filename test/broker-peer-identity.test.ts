import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { BrokerError } from '../server/src/broker/errors.ts';
import { issuingCaOf, peerIdentity } from '../server/src/broker/peer-identity.ts';
import { mutualTlsServerOptions } from '../server/src/tls/defaults.ts';
import { factoryCredentials, makeDataDir, mintDeviceCredential, serviceCredential, type Credential } from './helpers/fleet.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * After a full handshake Node has the chain the client sent, after a resumed one only the leaf
 * the session kept: peerIdentity must come to the same identity, or the same refusal, from both,
 * for every kind of certificate.
 */

test('a resumed TLS session gives the identity, or the refusal, of the full handshake: device, service, bootstrap, operator', async (t) => {
  const data = await makeDataDir(t);
  const issuingPem = await readFile(data.layout.authorityCert('issuing'), 'utf8');
  const issuing = issuingCaOf(new X509Certificate(issuingPem));
  const [bootstrap] = await factoryCredentials(t, data);
  const credentials: Record<string, Credential> = {
    device: await mintDeviceCredential(data, { id: 'thermostat-0123456789ab', ca: 'issuing' }),
    service: await serviceCredential(t, data),
    bootstrap: bootstrap!,
    operator: { id: 'operator', certPem: await readFile(data.layout.operatorCert, 'utf8'), keyPem: await readFile(data.layout.operatorKey, 'utf8') },
  };
  const seen: { resumed: boolean; outcome: string }[] = [];
  const server = createServer(mutualTlsServerOptions({ key: await readFile(data.layout.serverKey, 'utf8'), cert: await readFile(data.layout.serverCert, 'utf8'), clientCas: [data.rootPem, issuingPem] }), (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    let outcome: string;
    try {
      outcome = JSON.stringify(peerIdentity(socket, issuing));
    } catch (error) {
      outcome = error instanceof BrokerError ? error.code : String(error);
    }
    seen.push({ resumed: socket.isSessionReused(), outcome });
    socket.write('x');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;

  const handshake = async (credential: Credential, session?: Buffer): Promise<Buffer | undefined> => {
    const socket = connect({ host: '127.0.0.1', port, ca: data.rootPem, cert: credential.certPem, key: credential.keyPem, servername: 'localhost', session });
    socket.on('error', () => undefined);
    const ticket = once(socket, 'session');
    try {
      // The server's answer: it has read the certificate.
      await withDeadline(once(socket, 'data'), { what: 'the server reading the certificate' });
      return session ? undefined : ((await withDeadline(ticket, { what: 'a session ticket' })) as [Buffer])[0];
    } finally {
      socket.destroy();
    }
  };
  const outcomes: Record<string, string | undefined> = {};
  for (const [kind, credential] of Object.entries(credentials)) {
    seen.length = 0;
    const ticket = await handshake(credential);
    await handshake(credential, ticket);
    const [full, resumed] = seen;
    t.false(full?.resumed, kind);
    t.true(resumed?.resumed, `${kind}: the session resumed`);
    t.is(resumed?.outcome, full?.outcome, kind);
    outcomes[kind] = resumed?.outcome;
  }
  t.like(JSON.parse(outcomes.device ?? '{}'), { kind: 'device', deviceId: 'thermostat-0123456789ab' });
  t.like(JSON.parse(outcomes.service ?? '{}'), { kind: 'service', service: 'backend' });
  t.is(outcomes.bootstrap, 'BROKER_NOT_OPERATIONAL', 'signed by the factory CA');
  t.is(outcomes.operator, 'BROKER_NOT_OPERATIONAL', 'no device or service identity');
});
