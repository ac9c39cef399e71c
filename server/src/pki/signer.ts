import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { signatureAlgorithmFor, type SignatureAlgorithm } from './algorithms.ts';

/**
 * Whatever holds a CA private key. The CA never touches key material directly, so a file key
 * today can become an HSM or a cloud KMS key by implementing this interface.
 */
export interface Signer {
  /** The public half, used for the AKI/SKI and to check what was signed. */
  readonly publicKey: KeyObject;
  /** The algorithm every signature of this signer uses. */
  readonly algorithm: SignatureAlgorithm;
  /** Signs `data` and returns the signature as it goes into a certificate (DER for ECDSA). */
  sign(data: Uint8Array): Promise<Buffer>;
}

/** A signer over a private key held in process memory (loaded from a PKCS#8 file). */
export class KeyObjectSigner implements Signer {
  readonly algorithm: SignatureAlgorithm;

  constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
  ) {
    this.algorithm = signatureAlgorithmFor(privateKey);
  }

  async sign(data: Uint8Array): Promise<Buffer> {
    // Synchronous on purpose: a P-256 signature costs ~25 us, less than a libuv round trip.
    return cryptoSign(this.algorithm.hash, data, this.privateKey);
  }
}
