import test from 'ava';
import { BenchUsageError, parseBenchOptions } from '../bench/options.ts';
import { RECONNECT_DEFAULTS, RECONNECT_QUICK } from '../bench/reconnect/options.ts';

test('--only reconnect: 10,000 devices back at 1.5x the searched capacity by default; --capacity skips the search; --quick shrinks every phase', (t) => {
  const defaults = parseBenchOptions(['--only', 'reconnect'])?.reconnect;
  t.like(defaults, { devices: 10_000, ratePercent: 150, capacity: undefined, costDevices: RECONNECT_DEFAULTS.costDevices });
  t.deepEqual(defaults?.search, { ...RECONNECT_DEFAULTS.search });
  const given = parseBenchOptions(['--only', 'reconnect', '--capacity', '250', '--reconnect-devices', '4000', '--reconnect-rate-percent', '200', '--cost-devices', '500', '--cost-rate', '50'])?.reconnect;
  t.like(given, { capacity: 250, devices: 4000, ratePercent: 200, costDevices: 500, costRate: 50 });
  const quick = parseBenchOptions(['--only', 'reconnect', '--quick'])?.reconnect;
  t.like(quick, { devices: RECONNECT_QUICK.devices, costDevices: RECONNECT_QUICK.costDevices });
  t.deepEqual(quick?.search, { ...RECONNECT_QUICK.search });
  // Explicit options win over --quick.
  t.is(parseBenchOptions(['--only', 'reconnect', '--quick', '--reconnect-devices', '2000'])?.reconnect.devices, 2000);
});

test('reconnect options: bad values, more cost devices than devices, and reconnect flags without --only reconnect are usage errors', (t) => {
  const usage = (argv: string[]): string => t.throws(() => parseBenchOptions(argv), { instanceOf: BenchUsageError })?.message ?? '';
  t.regex(usage(['--only', 'reconnect', '--capacity', '0']), /--capacity must be a whole number from 1/);
  t.regex(usage(['--only', 'reconnect', '--reconnect-devices', 'many']), /--reconnect-devices must be a whole number/);
  t.regex(usage(['--only', 'reconnect', '--reconnect-devices', '100', '--cost-devices', '200']), /--cost-devices \(200\) is above the devices of the storm \(100\)/);
  t.regex(usage(['--only', 'reconnect', '--capacity-start-rate', '500', '--capacity-max-rate', '100']), /--capacity-max-rate \(100\) is below --capacity-start-rate \(500\)/);
  t.regex(usage(['--capacity', '100']), /--capacity applies to --only reconnect/);
  t.regex(usage(['--only', 'reconnect', '--registry', 'postgres']), /--registry applies to the enrollment benchmark, not to --only reconnect/);
});
