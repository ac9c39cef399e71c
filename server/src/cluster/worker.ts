import type { Logger } from 'pino';
import { operatorError } from '../cli/operator-error.ts';
import { startNode, type RunningNode } from '../server.ts';
import { isFleetgateMessage, workerName, type PrimaryMessage, type WorkerMessage, type WorkerSpec } from './worker-protocol.ts';

/** Sends to the primary; resolves once the message is written (or at once without a channel). */
function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

/**
 * One worker process of `fleetgate serve --workers N`: a cluster node (`<node-id>-w<i>`) on the
 * listening ports it shares with the other workers, without a metrics listener. It answers the
 * primary's questions (readiness, metrics) over IPC and stops gracefully on SIGTERM (how the
 * primary stops it). SIGINT is left to the primary: Ctrl-C on a terminal reaches the whole
 * process group, and the primary orders the stop (after its drain). When the primary is gone (its
 * IPC channel closes), node:cluster exits the worker at once: no worker outlives its primary.
 *
 * A failure at start is sent to the primary, which reports it once; returns the exit status.
 */
export async function runWorker(spec: WorkerSpec, baseLogger: Logger): Promise<number> {
  const logger = baseLogger.child({ worker: workerName(spec.index) });
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const onSigint = (): void => undefined;
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', stop);
  let node: RunningNode | undefined;
  const onMessage = (message: unknown): void => {
    if (!node || !isFleetgateMessage<PrimaryMessage>(message)) return;
    const running = node;
    const answer =
      message.type === 'fleetgate:readiness'
        ? running.health.readiness().then((readiness): WorkerMessage => ({ type: 'fleetgate:readiness', id: message.id, readiness }))
        : running.metrics.registry.getMetricsAsJSON().then((metrics): WorkerMessage => ({ type: 'fleetgate:metrics', id: message.id, metrics }));
    answer.then(send, (error: unknown) => logger.error({ err: error, question: message.type }, 'answering the primary failed'));
  };
  process.on('message', onMessage);
  try {
    try {
      node = await startNode({
        dataDir: spec.dataDir,
        logger,
        registryUrl: spec.registryUrl,
        clusterRedis: spec.clusterRedis,
        nodeId: spec.nodeId,
        listen: spec.listen,
      });
    } catch (error) {
      const known = operatorError(error);
      await send({ type: 'fleetgate:failed', ...(known ? { code: known.code, message: known.message } : { message: error instanceof Error ? (error.stack ?? error.message) : String(error) }) });
      return known?.exit ?? 1;
    }
    logger.info({ nodeId: spec.nodeId, estUrl: node.estUrl, mqttUrl: node.mqttUrl, adminUrl: node.adminUrl }, 'worker listening');
    await send({ type: 'fleetgate:started', estUrl: node.estUrl, mqttUrl: node.mqttUrl, adminUrl: node.adminUrl });
    await stopped;
    logger.info('worker shutting down');
    await node.close();
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', stop);
    process.off('message', onMessage);
    // The IPC channel would hold the process open; disconnecting it would make node:cluster
    // exit with 0 at once, whatever the status.
    process.channel?.unref();
  }
}
