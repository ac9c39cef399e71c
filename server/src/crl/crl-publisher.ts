import type { Logger } from 'pino';
import type { CertificateAuthority } from '../pki/ca.ts';
import { signCrl, type CrlReason } from '../pki/crl.ts';
import type { Registry } from '../registry/types.ts';

/** What the CRL publisher reads: revocation events, the revoked certificates and the next cRLNumber. */
type CrlStore = Pick<Registry, 'onDeviceChange' | 'revokedCertificates' | 'nextCrlNumber' | 'saveCrl' | 'currentCrl'>;

/** How long a CRL is valid, and how often it is re-signed before that. */
export interface CrlTiming {
  readonly validityMs: number;
  readonly refreshMs: number;
}

export const DEFAULT_CRL_TIMING: CrlTiming = { validityMs: 24 * 3_600_000, refreshMs: 6 * 3_600_000 };

/**
 * Keeps a current CRL of the device-issuing CA: signed again on every revocation (as soon as the
 * registry has it) and on a timer well before nextUpdate, so relying parties never hold an
 * expired one. The broker does not use it (it checks revocation in memory); it is published for
 * everyone else.
 *
 * Several processes on one registry (a cluster) each sign on a revocation they hear of, and each
 * saves what it signed in the registry, which keeps the highest cRLNumber: every process serves
 * that one, so a relying party gets the same number and the same bytes from every node.
 */
export class CrlPublisher {
  private current: Buffer | undefined;
  /** The cRLNumber of `current`. */
  private currentNumber = 0n;
  /** The signing under way. */
  private running: Promise<Buffer> | undefined;
  /** The signing promised to callers that came during `running`. */
  private queued: Promise<Buffer> | undefined;
  /** The signing the latest revocation event started or joined. */
  private revocationSigning: Promise<Buffer> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly issuer: CertificateAuthority,
    private readonly registry: CrlStore,
    private readonly logger: Logger,
    private readonly timing: CrlTiming = DEFAULT_CRL_TIMING,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.unsubscribe = registry.onDeviceChange((change) => {
      if (change.revokedSerials.length > 0) {
        this.revocationSigning = this.refresh();
        this.revocationSigning.catch(() => undefined); // logged by build(); awaited by revocationsPublished()
      }
    });
    this.timer = setInterval(() => this.refreshInBackground(), timing.refreshMs);
    this.timer.unref();
  }

  /**
   * Settles once a CRL that lists every revocation the registry has announced so far is the
   * current one. The registry calls its change listeners before the write that revoked returns,
   * so a caller that has just revoked waits for the signing that change started (or the one
   * queued behind a signing already under way), not for one more.
   */
  async revocationsPublished(): Promise<void> {
    await this.revocationSigning;
  }

  /** The current CRL (DER): the newest any process signed, signing one first if there is none yet. */
  async crl(): Promise<Buffer> {
    const own = this.current ?? (await this.refresh());
    const shared = await this.registry.currentCrl();
    return shared !== undefined && BigInt(shared.number) > this.currentNumber ? Buffer.from(shared.der, 'base64') : own;
  }

  /**
   * Signs a new CRL that reflects the registry as it is now, at the latest. A call while a signing
   * is under way gets the next signing, which starts when that one ends: the running one may have
   * read the revoked certificates before the change its caller knows of. Every call made during
   * one signing shares that next one, so a burst of revocations costs two signings, not one each.
   */
  refresh(): Promise<Buffer> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    this.queued = this.running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.queued = undefined;
        return this.start();
      });
    return this.queued;
  }

  /** A refresh nobody waits for: a failure is logged by build() (e.g. the registry closed at shutdown). */
  private refreshInBackground(): void {
    this.refresh().catch(() => undefined);
  }

  private start(): Promise<Buffer> {
    const run = this.build().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private async build(): Promise<Buffer> {
    try {
      const revoked = await this.registry.revokedCertificates();
      const now = this.now();
      const number = await this.registry.nextCrlNumber();
      const der = await signCrl(this.issuer, {
        number,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + this.timing.validityMs),
        revoked: revoked.map((record) => ({
          serial: BigInt(`0x${record.serial}`),
          revokedAt: new Date(record.revokedAt ?? record.issuedAt),
          reason: record.revocationReason as CrlReason | undefined,
        })),
      });
      await this.registry.saveCrl({ number: number.toString(), der: der.toString('base64'), thisUpdate: now.toISOString() });
      this.current = der;
      this.currentNumber = number;
      this.logger.info({ revoked: revoked.length, number: number.toString() }, 'CRL signed');
      return der;
    } catch (error) {
      this.logger.error({ err: error }, 'CRL signing failed');
      throw error;
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
