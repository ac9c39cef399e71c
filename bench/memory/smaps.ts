import { readFile } from 'node:fs/promises';

/**
 * A process's resident memory by the kind of mapping it sits in, from /proc/<pid>/smaps, in KiB.
 * In a Node process `[heap]` is glibc malloc's main arena: native allocations of the main thread
 * (OpenSSL's per-connection state, Node's C++ objects); the other anonymous mappings hold V8's
 * heap (its pages are mmap'd one by one), thread stacks and the other threads' malloc arenas.
 */
export interface ResidentByMapping {
  readonly mallocHeapKiB: number;
  readonly otherAnonymousKiB: number;
  readonly fileKiB: number;
}

/** Sums the Rss of every mapping of `pid` into {@link ResidentByMapping}'s kinds. */
export async function readResidentByMapping(pid: number): Promise<ResidentByMapping> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const totals: Record<keyof ResidentByMapping, number> = { mallocHeapKiB: 0, otherAnonymousKiB: 0, fileKiB: 0 };
  let kind: keyof ResidentByMapping = 'otherAnonymousKiB';
  for (const line of text.split('\n')) {
    // A mapping's header: "start-end perms offset dev inode [pathname]"; its fields follow it.
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const path = header[1] ?? '';
      kind = path === '[heap]' ? 'mallocHeapKiB' : path.startsWith('/') ? 'fileKiB' : 'otherAnonymousKiB';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    if (rss) totals[kind] += Number(rss[1]);
  }
  return totals;
}

/** `after - before`, per connection. */
export function residentPerConnection(before: ResidentByMapping, after: ResidentByMapping, connections: number): ResidentByMapping {
  const per = (pick: (reading: ResidentByMapping) => number): number => (pick(after) - pick(before)) / Math.max(1, connections);
  return { mallocHeapKiB: per((r) => r.mallocHeapKiB), otherAnonymousKiB: per((r) => r.otherAnonymousKiB), fileKiB: per((r) => r.fileKiB) };
}
