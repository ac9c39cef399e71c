import { get } from 'node:http';

/**
 * Registry write rounds (batches) a fleetgate server has committed so far, from its Prometheus
 * histogram `fleetgate_registry_write_seconds`: one observation per round on either engine
 * (LevelDB batch, PostgreSQL transaction), whatever the round held.
 */
export interface RegistryRounds {
  readonly count: number;
  /** Seconds spent committing them (the histogram's sum). */
  readonly seconds: number;
}

const TIMEOUT_MS = 5_000;

/** Scrapes `metricsUrl` once (loopback, plain HTTP) and reads the round counter from it. */
export async function readRegistryRounds(metricsUrl: string): Promise<RegistryRounds> {
  const text = await new Promise<string>((resolve, reject) => {
    const request = get(metricsUrl, { timeout: TIMEOUT_MS }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`${metricsUrl}: HTTP ${response.statusCode}`))));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`${metricsUrl}: no answer in ${TIMEOUT_MS} ms`)));
    request.on('error', reject);
  });
  const value = (name: string): number => {
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    if (!match?.[1]) throw new Error(`${metricsUrl} has no ${name}`);
    return Number(match[1]);
  };
  return { count: value('fleetgate_registry_write_seconds_count'), seconds: value('fleetgate_registry_write_seconds_sum') };
}
