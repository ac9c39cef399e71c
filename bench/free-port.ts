import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** Read once: it does not change while a run lasts. */
let range: { low: number; high: number } | undefined;

/**
 * The kernel's ephemeral range: ports it hands to port-0 listeners and to outgoing connections.
 * A port chosen inside it can be taken by any client socket of a parallel test before the child
 * process binds it (CI saw `EADDRINUSE` on 33555 that way), so ports are chosen below it.
 */
function ephemeralRange(): { low: number; high: number } {
  range ??= readEphemeralRange();
  return range;
}

function readEphemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return { low, high };
  } catch {
    // Not Linux: fall back to the IANA dynamic range, the default elsewhere.
  }
  return { low: 49152, high: 65535 };
}

const LOWEST_CHOSEN_PORT = 20_000;

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

/** Ports to try, in random order: below the ephemeral range when there is room, else anywhere above 1023. */
function candidatePort(): number {
  const { low } = ephemeralRange();
  const [from, to] = low - LOWEST_CHOSEN_PORT >= 1_000 ? [LOWEST_CHOSEN_PORT, low - 1] : [1_024, 65_535];
  return from + Math.floor(Math.random() * (to - from + 1));
}

/**
 * `count` distinct TCP ports that were free on 127.0.0.1 a moment ago, for child processes that
 * need a number: random ports below the kernel's ephemeral range, each bound to check (all held at
 * once, so no port comes back twice), then closed. Another process could still take one before
 * the child binds it; the child then fails to start loudly rather than measuring something else.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempt = 0; ports.length < count; attempt += 1) {
      if (attempt > count * 100) throw new Error(`no ${count} free ports on 127.0.0.1`);
      const port = candidatePort();
      if (ports.includes(port)) continue;
      const server = await listen(port);
      if (!server) continue;
      held.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** One free port on 127.0.0.1 (see {@link freePorts}). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  return port;
}
