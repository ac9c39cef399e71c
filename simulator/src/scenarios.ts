import { exec } from 'node:child_process';
import { request } from 'node:https';
import type { FleetRunner } from './fleet-runner.ts';
import type { ScenarioResult } from './report/types.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0);
};

/** Waits until `check` holds or `timeoutMs` passes; returns whether it held. */
async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (check()) return true;
    await sleep(100);
  }
  return check();
}

/**
 * Reconnect storm: the server is restarted mid-run (by `restartCommand`, or by the operator
 * while the simulator watches); measures how long until every device is back, and how spread
 * out the reconnections were (the jitter that keeps a fleet from returning in lockstep).
 */
export async function reconnectStorm(runner: FleetRunner, options: { restartCommand?: string; timeoutMs: number; log: (line: string) => void }): Promise<ScenarioResult> {
  const before = performance.now();
  if (options.restartCommand) {
    options.log(`reconnect-storm: running ${options.restartCommand}`);
    exec(options.restartCommand, (error) => error && options.log(`restart command failed: ${error.message}`));
  } else {
    options.log('reconnect-storm: waiting for the server to be restarted');
  }
  const dropped = await until(() => runner.sims.some((sim) => (sim.disconnectedAt ?? 0) > before), options.timeoutMs);
  if (!dropped) return { name: 'reconnect-storm', disconnected: 0, note: 'no disconnection was seen' };
  const firstDrop = Math.min(...runner.sims.map((sim) => ((sim.disconnectedAt ?? 0) > before ? (sim.disconnectedAt as number) : Number.POSITIVE_INFINITY)));
  const affected = (): typeof runner.sims => runner.sims.filter((sim) => (sim.disconnectedAt ?? 0) > before);
  const back = (): boolean => affected().every((sim) => (sim.lastConnectedAt ?? 0) > (sim.disconnectedAt ?? 0));
  await sleep(500);
  const allBack = await until(back, options.timeoutMs);
  const delays = affected()
    .filter((sim) => (sim.lastConnectedAt ?? 0) > (sim.disconnectedAt ?? 0))
    .map((sim) => (sim.lastConnectedAt as number) - firstDrop);
  return {
    name: 'reconnect-storm',
    disconnected: affected().length,
    reconnected: delays.length,
    allBack,
    allBackAfterMs: delays.length ? Math.round(Math.max(...delays)) : -1,
    reconnectP50Ms: percentile(delays, 0.5),
    reconnectP99Ms: percentile(delays, 0.99),
    reconnectSpreadMs: delays.length ? Math.round(Math.max(...delays) - Math.min(...delays)) : 0,
  };
}

/** Renewal storm: every connected device renews at once (new key, simplereenroll, switch). */
export async function renewalStorm(runner: FleetRunner, options: { timeoutMs: number }): Promise<ScenarioResult> {
  const candidates = runner.sims.filter((sim) => sim.device.state.type === 'connected');
  const started = performance.now();
  const outcomes = await Promise.all(
    candidates.map(async (sim) => {
      const begin = performance.now();
      const serial = sim.device.state.type === 'connected' ? sim.device.state.certificate.serial : '';
      await sim.device.renewNow().catch(() => undefined);
      const state = sim.device.state;
      const renewed = state.type === 'connected' && state.certificate.serial !== serial;
      return { renewed, ms: performance.now() - begin };
    }),
  );
  const durations = outcomes.filter((outcome) => outcome.renewed).map((outcome) => outcome.ms);
  return {
    name: 'renewal-storm',
    devices: candidates.length,
    renewed: durations.length,
    failed: candidates.length - durations.length,
    wallMs: Math.round(performance.now() - started),
    renewalP50Ms: percentile(durations, 0.5),
    renewalP99Ms: percentile(durations, 0.99),
    withinTimeout: performance.now() - started < options.timeoutMs,
  };
}

/** Operator access for the revocation sweep. */
export interface AdminAccess {
  readonly url: string;
  readonly root: string;
  readonly cert: string;
  readonly key: string;
}

function adminPost(admin: AdminAccess, path: string, body: unknown): Promise<number> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, admin.url), { method: 'POST', ca: admin.root, cert: admin.cert, key: admin.key, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Revocation sweep: revokes a share of the fleet through the admin API and checks that each
 * revoked device is dropped and ends in `refused` (no retry loop), and no other device is hurt.
 */
export async function revocationSweep(runner: FleetRunner, admin: AdminAccess, share: number, options: { timeoutMs: number }): Promise<ScenarioResult> {
  const connected = runner.sims.filter((sim) => sim.device.state.type === 'connected');
  const victims = connected.slice(0, Math.max(1, Math.round(connected.length * share)));
  const others = connected.filter((sim) => !victims.includes(sim));
  const revokedAt = new Map<string, number>();
  let apiFailures = 0;
  for (let index = 0; index < victims.length; index += 20) {
    await Promise.all(
      victims.slice(index, index + 20).map(async (sim) => {
        revokedAt.set(sim.credential.id, performance.now());
        const status = await adminPost(admin, `/v1/devices/${sim.credential.id}/revoke`, { reason: 'keyCompromise' }).catch(() => 0);
        if (status !== 200) apiFailures++;
      }),
    );
  }
  await until(() => victims.every((sim) => sim.device.state.type === 'refused'), options.timeoutMs);
  await sleep(2000); // long enough to see a retry loop if there were one
  const dropMs = victims
    .filter((sim) => sim.disconnectedAt !== undefined && sim.disconnectedAt >= (revokedAt.get(sim.credential.id) ?? 0))
    .map((sim) => (sim.disconnectedAt as number) - (revokedAt.get(sim.credential.id) as number));
  return {
    name: 'revocation-sweep',
    revoked: victims.length,
    apiFailures,
    dropped: dropMs.length,
    refused: victims.filter((sim) => sim.device.state.type === 'refused').length,
    reconnectsAfterRefusal: victims.reduce((sum, sim) => sum + sim.connectsAfterRefusal, 0),
    dropP50Ms: percentile(dropMs, 0.5),
    dropMaxMs: dropMs.length ? Math.round(Math.max(...dropMs)) : -1,
    othersStillConnected: others.filter((sim) => sim.device.state.type === 'connected').length,
    others: others.length,
  };
}
