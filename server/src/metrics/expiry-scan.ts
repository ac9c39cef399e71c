import type { Logger } from 'pino';
import type { Registry } from '../registry/types.ts';
import type { Metrics } from './metrics.ts';

/** How often the expiring-certificates gauge is recomputed (it scans every device). */
const EXPIRY_SCAN_MS = 60_000;
const SEVEN_DAYS_MS = 7 * 86_400_000;

/**
 * Keeps `fleetgate_certificates_expiring_7d` current: every enrolled device is read at start and
 * once a minute. Returns the function that stops it.
 */
export function startExpiryScan(metrics: Metrics, registry: Pick<Registry, 'listDevices'>, logger: Logger): () => void {
  const scanExpiring = async (): Promise<void> => {
    const horizon = Date.now() + SEVEN_DAYS_MS;
    const devices = await registry.listDevices({ state: 'enrolled' });
    metrics.certificatesExpiringSoon.set(devices.filter((device) => Date.parse(device.certNotAfter) < horizon).length);
  };
  const scan = (): void => {
    scanExpiring().catch((error: unknown) => logger.warn({ err: error }, 'expiry scan failed'));
  };
  scan();
  const timer = setInterval(scan, EXPIRY_SCAN_MS);
  timer.unref();
  return () => clearInterval(timer);
}
