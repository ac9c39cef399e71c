import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon, type Daemon } from './daemon.ts';
import { freePort } from './free-port.ts';

/**
 * A throwaway Redis server: `redis-server` from Debian's package on a free loopback port, no
 * persistence (`--save ''`, no append-only file), in a directory of the caller's, under
 * `setpriv --pdeathsig` (bench/daemon.ts) so it stops with the process that started it. A
 * restart loses everything it held, as a Redis without persistence does. Shared by the cluster
 * benchmark and the tests (test/helpers/redis.ts).
 */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Its pid, for /proc (the benchmark counts Redis's CPU as the cluster's). */
  pid(): number;
  /** Kills it at once (SIGKILL): an outage. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/** How long redis-server may take to answer PING. */
const READY_TIMEOUT_MS = 30_000;

/** Whether something answers PING with PONG on the port. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1_000);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) {
        socket.destroy();
        resolve(answer.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Starts redis-server with its working directory `dir` (which must exist) and waits until it answers PING. */
export async function startRedis(options: { readonly dir: string; readonly cpu?: number }): Promise<RedisServer> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', options.dir, '--protected-mode', 'yes'];
  const [file, fileArgs] = options.cpu === undefined ? ['redis-server', args] : ['taskset', ['-c', String(options.cpu), 'redis-server', ...args]];
  let daemon: Daemon | undefined;
  const start = async (): Promise<void> => {
    const started = startDaemon('redis-server', file, fileArgs, process.env, { stopSignal: 'SIGKILL' });
    daemon = started;
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (!(await pong(port))) {
      if (started.exited()) throw new Error(`redis-server exited (is Debian's redis-server installed?):\n${started.outputTail()}`);
      if (performance.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${READY_TIMEOUT_MS} ms`);
      await sleep(25);
    }
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid() {
      if (!daemon) throw new Error('redis-server is not running');
      return daemon.pid;
    },
    async stop() {
      const running = daemon;
      daemon = undefined;
      await running?.stop();
    },
    start,
  };
}
