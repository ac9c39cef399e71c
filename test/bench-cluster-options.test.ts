import test from 'ava';
import { failedForLateStarts } from '../bench/cluster/capacity.ts';
import { CLUSTER_DEFAULTS, stormRates } from '../bench/cluster/options.ts';
import { BenchUsageError, parseBenchOptions } from '../bench/options.ts';

test('--only cluster takes its own options; the rates step up by the percentage and stop at the maximum', (t) => {
  const options = parseBenchOptions(['--only', 'cluster', '--start-rate', '100', '--step-percent', '150', '--max-rate', '400']);
  t.is(options?.only, 'cluster');
  t.like(options?.cluster, { startRate: 100, stepPercent: 150, maxRate: 400, stepSeconds: CLUSTER_DEFAULTS.stepSeconds });
  t.deepEqual(stormRates({ startRate: 100, stepPercent: 150, maxRate: 400 }), [100, 150, 225, 338]);
  t.deepEqual(stormRates({ startRate: 50, stepPercent: 125, maxRate: 100 }), [50, 63, 79, 99]);
  // A step that would round back to the same rate still moves up.
  t.deepEqual(stormRates({ startRate: 1, stepPercent: 110, maxRate: 3 }), [1, 2, 3]);
});

test('cluster options: bad values, a maximum below the start, and cluster flags without --only cluster are usage errors', (t) => {
  const usage = (argv: string[]): string => t.throws(() => parseBenchOptions(argv), { instanceOf: BenchUsageError })?.message ?? '';
  t.regex(usage(['--only', 'cluster', '--step-percent', '100']), /--step-percent must be a whole number from 105/);
  t.regex(usage(['--only', 'cluster', '--start-rate', 'fast']), /--start-rate must be a whole number/);
  t.regex(usage(['--only', 'cluster', '--start-rate', '500', '--max-rate', '100']), /--max-rate \(100\) is below --start-rate \(500\)/);
  t.regex(usage(['--max-rate', '100']), /--max-rate applies to --only cluster/);
  t.regex(usage(['--only', 'cluster', '--registry', 'postgres']), /--registry applies to the enrollment benchmark, not to --only cluster/);
  t.regex(usage(['--only', 'swarm']), /--only must be enrollment, broker, cluster or reconnect/);
});

test('a capacity step is run once more only when it failed while the load generator started its connections late', (t) => {
  const target = CLUSTER_DEFAULTS.p99TargetMs;
  // A step that failed while its connections started 385 ms late (p99), as first steps did on 2026-12-03.
  t.true(failedForLateStarts({ passed: false, scheduleLagP99Ms: 385 }, target));
  // Late, but passed: nothing to repeat.
  t.false(failedForLateStarts({ passed: true, scheduleLagP99Ms: 385 }, target));
  // Failed with the load generator on time: the server's failure, which ends the search.
  t.false(failedForLateStarts({ passed: false, scheduleLagP99Ms: 15 }, target));
  t.false(failedForLateStarts({ passed: false, scheduleLagP99Ms: target / 2 }, target));
  t.true(failedForLateStarts({ passed: false, scheduleLagP99Ms: target / 2 + 1 }, target));
});
