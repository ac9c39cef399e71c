import test from 'ava';
import { ExpiringCertificates } from '../server/src/metrics/expiring-certificates.ts';
import { Metrics } from '../server/src/metrics/metrics.ts';
import type { DeviceState } from '../server/src/registry/types.ts';

/*
 * fleetgate_certificates_expiring_7d from the devices it is given (registry/follow-devices.ts):
 * enrolled devices whose certificate ends within 7 days or has ended, recounted from memory.
 */

const DAY_MS = 86_400_000;
const NOW = Date.parse('2026-12-03T12:00:00Z');

/** The server's own gauge, in a metrics registry of its own. */
function gauge(): { gauge: Metrics['certificatesExpiringSoon']; value: () => Promise<number | undefined> } {
  const made = new Metrics({ processMetrics: false }).certificatesExpiringSoon;
  return { gauge: made, value: async () => (await made.get()).values[0]?.value };
}

const device = (id: string, state: DeviceState, endsInDays: number | undefined) => ({
  id,
  state,
  certNotAfter: endsInDays === undefined ? '' : new Date(NOW + endsInDays * DAY_MS).toISOString(),
});

test('counts enrolled devices whose certificate ends within 7 days or has ended, and no others', async (t) => {
  const { gauge: made, value } = gauge();
  const expiring = new ExpiringCertificates(made, () => NOW);
  expiring.place(device('soon', 'enrolled', 3));
  expiring.place(device('ended', 'enrolled', -2));
  expiring.place(device('later', 'enrolled', 30));
  expiring.place(device('edge', 'enrolled', 7));
  expiring.place(device('never-enrolled', 'provisioned', undefined));
  expiring.place(device('off', 'disabled', 1));
  expiring.place(device('gone', 'revoked', 1));
  expiring.start();
  t.teardown(() => expiring.close());
  t.is(await value(), 2, 'soon and ended; exactly 7 days is not within');
  t.is(expiring.endingBefore(NOW + 8 * DAY_MS), 3);
});

test('a device leaves the count when it renews, is disabled or revoked, and comes back when it is enrolled again', (t) => {
  const expiring = new ExpiringCertificates(gauge().gauge, () => NOW);
  const horizon = NOW + 7 * DAY_MS;
  expiring.place(device('a', 'enrolled', 2));
  expiring.place(device('b', 'enrolled', 2));
  t.is(expiring.endingBefore(horizon), 2);
  expiring.place(device('a', 'enrolled', 60));
  t.is(expiring.endingBefore(horizon), 1, 'a renewed');
  expiring.place(device('b', 'disabled', 2));
  t.is(expiring.endingBefore(horizon), 0, 'b disabled');
  expiring.place(device('b', 'enrolled', 2));
  t.is(expiring.endingBefore(horizon), 1, 'b enabled again');
  expiring.place(device('b', 'revoked', 2));
  t.is(expiring.endingBefore(horizon), 0, 'b revoked');
});

test('the horizon moves with the clock: a certificate enters the count 7 days before it ends', async (t) => {
  let now = NOW;
  const { gauge: made, value } = gauge();
  const expiring = new ExpiringCertificates(made, () => now);
  expiring.place(device('a', 'enrolled', 10));
  expiring.start();
  t.teardown(() => expiring.close());
  t.is(await value(), 0);
  now += 4 * DAY_MS;
  t.is(expiring.endingBefore(now + 7 * DAY_MS), 1);
});
