import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import type { TlsKeyMaterial } from './keys.ts';
import type { SecureContext } from 'node:tls';
import { request } from 'node:https';
import { children, decodeSingle } from './der-reader.ts';
import { SdkError } from './errors.ts';
import { checkServerNameOnLeaf } from './server-identity.ts';
import { certificateFingerprint, TlsSessionCache } from './tls-sessions.ts';
import type { TLSSocket } from 'node:tls';
import { parseCertsOnly } from './pkcs7.ts';
import { ENROLL_ERROR_CODES, ERROR_CODE_HEADER, EST_PATHS, MEDIA_TYPES, type EnrollErrorCode } from './protocol.ts';

/**
 * TLS client credentials: PEM certificate chain and the key (PEM, or an OpenSSL engine
 * reference), or a SecureContext already built from them (and the pinned root).
 */
export type TlsCredential = ({ readonly cert: string } & TlsKeyMaterial) | { readonly secureContext: SecureContext; readonly fingerprint?: string };

export interface EstClientOptions {
  /** Base URL of the EST server, e.g. https://127.0.0.1:8443 */
  readonly url: string;
  /** The pinned root certificate (PEM): the server and every issued certificate must chain to it. */
  readonly root: string;
  /** Per-request timeout. */
  readonly timeoutMs?: number;
  /** Local address to connect from. */
  readonly localAddress?: string;
}

/** An issued certificate and its chain, checked against the key and the pinned root. */
export interface EnrollmentResult {
  readonly certificate: X509Certificate;
  /** Leaf first, then the issuing CA(s), as PEM, ready to present in TLS. */
  readonly chainPem: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function toPem(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
}

function serverCode(value: string | string[] | undefined): EnrollErrorCode | undefined {
  const code = Array.isArray(value) ? value[0] : value;
  return ENROLL_ERROR_CODES.find((known) => known === code);
}

/**
 * The subjectPublicKeyInfo of a certificate as encoded (RFC 5280 §4.1: TBSCertificate { [0]
 * version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }), read
 * from a certificate that parseCertsOnly already checked as strict DER; undefined when it does not
 * have that shape. Compared byte for byte with the SPKI the CSR carried, which is what comparing
 * OpenSSL's export of the certificate's key did (OpenSSL 3 writes a key back in the form it read,
 * a compressed point included: test/sdk-est-answer.test.ts), for 2 µs instead of 129 µs
 * (measured in process, P-256).
 */
function subjectPublicKeyInfo(certificate: Buffer): Buffer | undefined {
  const [tbs] = children(decodeSingle(certificate));
  const fields = tbs ? children(tbs) : [];
  const version = fields[0]?.tag === 0xa0 ? 1 : 0;
  return fields[version + 5]?.raw;
}

/** Parsed intermediates by DER (base64): every device of a fleet receives the same issuing CA. */
const parsedIntermediates = new Map<string, X509Certificate>();

/** A certificate from a server answer; one OpenSSL cannot read is a bad answer, not a crash. */
function x509(der: Buffer): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (error) {
    throw new SdkError('SDK_BAD_RESPONSE', 'the server answer holds a certificate that cannot be parsed', { cause: error });
  }
}

function parseIntermediate(der: Buffer): X509Certificate {
  const key = der.toString('base64');
  let certificate = parsedIntermediates.get(key);
  if (!certificate) {
    certificate = x509(der);
    if (parsedIntermediates.size > 64) parsedIntermediates.clear();
    parsedIntermediates.set(key, certificate);
  }
  return certificate;
}

/** Intermediates already verified against a root (by fingerprint pair): a signature check saved per device. */
const verifiedLinks = new Set<string>();

/** Parsed roots by PEM: a simulator runs thousands of clients that all pin the same root. */
const parsedRoots = new Map<string, X509Certificate>();

function parseRoot(pem: string): X509Certificate {
  let root = parsedRoots.get(pem);
  if (!root) {
    root = new X509Certificate(pem);
    if (parsedRoots.size > 64) parsedRoots.clear();
    parsedRoots.set(pem, root);
  }
  return root;
}

/** The fingerprint a credential's TLS sessions are kept under; undefined: none kept (a context given without one). */
function fingerprintOf(credential: TlsCredential | undefined): string | undefined {
  if (!credential) return undefined;
  return 'secureContext' in credential ? credential.fingerprint : certificateFingerprint(credential.cert);
}

/**
 * EST client (RFC 7030) for the operations a device needs. Every request is a fresh mTLS
 * connection; responses are checked before anything is handed back.
 */
export class EstClient {
  private readonly root: X509Certificate;
  /** The last TLS session of each credential, offered on its next request (docs/sdk.md). */
  private readonly sessions = new TlsSessionCache();

  constructor(private readonly options: EstClientOptions) {
    this.root = parseRoot(options.root);
  }

  /** First enrollment, authenticated by the factory bootstrap credential. */
  simpleEnroll(credential: TlsCredential, csrDer: Uint8Array, publicKey: KeyObject | Buffer): Promise<EnrollmentResult> {
    return this.issue(EST_PATHS.simpleenroll, credential, csrDer, publicKey);
  }

  /** Renewal, authenticated by the current operational credential. */
  simpleReenroll(credential: TlsCredential, csrDer: Uint8Array, publicKey: KeyObject | Buffer): Promise<EnrollmentResult> {
    return this.issue(EST_PATHS.simplereenroll, credential, csrDer, publicKey);
  }

  /** The CA certificates the server publishes (no client authentication). */
  async caCertificates(): Promise<X509Certificate[]> {
    const body = await this.send('GET', EST_PATHS.cacerts, undefined, undefined);
    return parseCertsOnly(body).map(x509);
  }

  private async issue(path: string, credential: TlsCredential, csrDer: Uint8Array, publicKey: KeyObject | Buffer): Promise<EnrollmentResult> {
    const body = await this.send('POST', path, credential, `${Buffer.from(csrDer).toString('base64')}\n`);
    const [leafDer, ...chainDer] = parseCertsOnly(body);
    const certificate = x509(leafDer as Buffer);
    const expected = Buffer.isBuffer(publicKey)
      ? publicKey
      : (publicKey.type === 'public' ? publicKey : createPublicKey(publicKey)).export({ type: 'spki', format: 'der' });
    if (!subjectPublicKeyInfo(leafDer as Buffer)?.equals(expected)) {
      throw new SdkError('SDK_CERT_KEY_MISMATCH', 'the issued certificate does not carry this device key');
    }
    this.checkChain(certificate, chainDer.map(parseIntermediate));
    return { certificate, chainPem: [leafDer as Buffer, ...chainDer].map(toPem).join('') };
  }

  /** The leaf must chain, signature by signature, to the pinned root. */
  private checkChain(leaf: X509Certificate, intermediates: X509Certificate[]): void {
    let current = leaf;
    for (let depth = 0; depth < 5; depth++) {
      const link = `${current.fingerprint256}>${this.root.fingerprint256}`;
      if (verifiedLinks.has(link)) return;
      if (current.checkIssued(this.root) && current.verify(this.root.publicKey)) {
        if (current !== leaf) verifiedLinks.add(link);
        return;
      }
      const issuer = intermediates.find((candidate) => current.checkIssued(candidate) && current.verify(candidate.publicKey));
      if (!issuer) break;
      current = issuer;
    }
    throw new SdkError('SDK_CERT_UNTRUSTED', 'the issued certificate does not chain to the pinned root');
  }

  private send(method: 'GET' | 'POST', path: string, credential: TlsCredential | undefined, body: string | undefined): Promise<string> {
    const url = new URL(path, this.options.url);
    const fingerprint = fingerprintOf(credential);
    if (fingerprint !== undefined) this.sessions.keepOnly(fingerprint);
    const session = fingerprint === undefined ? undefined : this.sessions.get(fingerprint);
    const tls = credential === undefined ? {} : 'secureContext' in credential ? { secureContext: credential.secureContext } : credential;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          ca: this.options.root,
          ...tls,
          ...(session ? { session } : {}),
          agent: false,
          localAddress: this.options.localAddress,
          timeout: this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          headers: body === undefined ? {} : { 'content-type': MEDIA_TYPES.pkcs10 },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (error) => reject(new SdkError('SDK_NETWORK', error.message, { cause: error })));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status === 200) {
              resolve(text);
              return;
            }
            // A refused credential: its next request makes a full handshake.
            if ((status === 401 || status === 403) && fingerprint !== undefined) this.sessions.drop(fingerprint);
            const retryAfter = Number(res.headers['retry-after']);
            // 408 (the body arrived too slowly), 429 and 503 say "not now": worth a retry later.
            const code = status === 408 || status === 429 || status === 503 ? 'SDK_ENROLL_UNAVAILABLE' : 'SDK_ENROLL_REJECTED';
            reject(
              new SdkError(code, text.trim() || `EST answered ${status}`, {
                status,
                serverCode: serverCode(res.headers[ERROR_CODE_HEADER]),
                retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
              }),
            );
          });
        },
      );
      req.on('socket', (socket) => {
        // Emitted before the socket can have finished its handshake (agent: false, a new connection).
        checkServerNameOnLeaf(socket as TLSSocket);
        if (fingerprint !== undefined) (socket as TLSSocket).on('session', (ticket: Buffer) => this.sessions.set(fingerprint, ticket));
      });
      req.on('timeout', () => req.destroy(new Error(`EST request timed out after ${this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
      req.on('error', (error) => reject(error instanceof SdkError ? error : new SdkError('SDK_NETWORK', error.message, { cause: error })));
      req.end(body);
    });
  }
}
