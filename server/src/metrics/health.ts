import type { Server } from 'node:net';

/** What one readiness check found: `ok`, or why not (a stable word or an error code). */
export type CheckResult = 'ok' | string;

/** One thing `/readyz` asks before it says ready. */
export interface ReadinessCheck {
  readonly name: string;
  /** Resolves `ok` when ready; anything else (or a throw, or no answer in time) is not ready. */
  check(): Promise<CheckResult> | CheckResult;
}

/** The answer of `/readyz`: the HTTP status and the JSON body. */
export interface Readiness {
  readonly status: 200 | 503;
  readonly body: {
    readonly status: 'ready' | 'not ready';
    /** Every check by name: `ok` or why not. */
    readonly checks: Readonly<Record<string, CheckResult>>;
    /** The names of the checks that failed (empty when ready). */
    readonly notReady: readonly string[];
  };
}

/** How long one check may take before it counts as not ready: a probe must answer, not hang. */
export const CHECK_TIMEOUT_MS = 2_000;

/** A listener is ready while it listens (false before `listen` and from `close` on). */
export function listenerCheck(name: string, server: Pick<Server, 'listening'>): ReadinessCheck {
  return { name, check: () => (server.listening ? 'ok' : 'not listening') };
}

/**
 * Readiness of the whole server: ready when every check answers `ok` and shutdown has not begun.
 * Shutdown is a check of its own that fails first, before any listener closes, so a load balancer
 * that polls `/readyz` stops sending new connections while the old ones finish.
 */
export class HealthState {
  private readonly checks: ReadinessCheck[] = [];
  private stopping = false;

  constructor(private readonly timeoutMs = CHECK_TIMEOUT_MS) {}

  add(check: ReadinessCheck): void {
    this.checks.push(check);
  }

  /** Shutdown has begun: from now on `/readyz` answers 503 (`shutdown: "stopping"`). */
  beginShutdown(): void {
    this.stopping = true;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Runs every check at once, each bounded by the timeout. */
  async readiness(): Promise<Readiness> {
    const results = await Promise.all(this.checks.map(async (check) => [check.name, await this.run(check)] as const));
    const checks: Record<string, CheckResult> = { shutdown: this.stopping ? 'stopping' : 'ok', ...Object.fromEntries(results) };
    const notReady = Object.entries(checks)
      .filter(([, result]) => result !== 'ok')
      .map(([name]) => name);
    const ready = notReady.length === 0;
    return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', checks, notReady } };
  }

  private async run(check: ReadinessCheck): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${this.timeoutMs} ms`), this.timeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(() => check.check()), timeout]);
    } catch (error) {
      // A FleetgateError names its code (REGISTRY_CLOSED ...); anything else is summarised.
      const code = (error as { code?: unknown }).code;
      return typeof code === 'string' ? code : 'failed';
    } finally {
      clearTimeout(timer);
    }
  }
}
