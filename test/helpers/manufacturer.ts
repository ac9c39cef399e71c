import { createCsr, generateDeviceKeyPair } from '../../device-sdk/src/csr.ts';
import { EST_PATHS, ERROR_CODE_HEADER } from '../../device-sdk/src/protocol.ts';
import { createRootCertificate, issueCertificate, loadAuthority } from '../../server/src/pki/ca.ts';
import { generateKeyPair, privateKeyToPem, spkiDer } from '../../server/src/pki/keys.ts';
import { OID } from '../../server/src/pki/oids.ts';
import { toPem } from '../../server/src/pki/pem.ts';
import { KeyObjectSigner } from '../../server/src/pki/signer.ts';
import { csrBody, estRequest } from './est-client.ts';
import type { Credential, Fleet } from './fleet.ts';

/** A manufacturer's self-signed device CA, made at test time, and the bootstrap certificates it signs. */
export interface Manufacturer {
  /** The CA certificate, PEM (self-signed: it is its own chain up to the root). */
  readonly pem: string;
  /**
   * A bootstrap credential with CN = `id` (and the fleetgate identity URI), no OU; `subject`
   * replaces the subject Name (DER) for a test of an unusual encoding.
   */
  device(id: string, options?: { subject?: Buffer }): Promise<Credential>;
}

/** Makes a manufacturer CA with our own PKI code (valid a day either side of now). */
export async function manufacturer(name: string): Promise<Manufacturer> {
  const pair = generateKeyPair('ec-p256');
  const signer = new KeyObjectSigner(pair.privateKey, pair.publicKey);
  const now = Date.now();
  const der = await createRootCertificate({ subject: [{ type: OID.commonName, value: `${name} device CA` }], signer, notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) });
  const ca = loadAuthority(der, signer);
  return {
    pem: toPem('CERTIFICATE', der),
    async device(id, options = {}) {
      const key = generateKeyPair('ec-p256');
      const issued = await issueCertificate(ca, {
        subject: options.subject ?? [{ type: OID.commonName, value: id }],
        subjectPublicKeyInfo: spkiDer(key.publicKey),
        profile: { kind: 'device', deviceIdentityUri: `urn:fleetgate:device:${id}` },
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 86_400_000),
      });
      return { id, certPem: toPem('CERTIFICATE', issued.der), keyPem: privateKeyToPem(key.privateKey) };
    },
  };
}

/** An EST simpleenroll with a bootstrap credential: status, error code header and reason. */
export async function tryEnroll(fleet: Fleet, credential: Credential): Promise<{ status: number; code: string | undefined; text: string }> {
  const keys = await generateDeviceKeyPair();
  const answer = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  const code = answer.headers[ERROR_CODE_HEADER];
  return { status: answer.status, code: typeof code === 'string' ? code : undefined, text: answer.text };
}
