/**
 * Connections one loopback source address can hold to one port: the ephemeral port range
 * (32768-60999 by default) gives about 28k (DESIGN.md pitfalls); stay well below it.
 */
export const CONNECTIONS_PER_SOURCE = 20_000;

/**
 * The source address of the `index`-th of `total` held connections: all from 127.0.0.1 up to
 * {@link CONNECTIONS_PER_SOURCE}, beyond that spread round-robin over 127.0.0.1, .2, ... (every
 * 127.x address is loopback on Linux). `undefined` lets the kernel choose, as for small fleets.
 */
export function sourceAddress(index: number, total: number): string | undefined {
  if (total <= CONNECTIONS_PER_SOURCE) return undefined;
  const sources = Math.ceil(total / CONNECTIONS_PER_SOURCE);
  return `127.0.0.${1 + (index % sources)}`;
}
