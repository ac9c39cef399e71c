import { readFile } from 'node:fs/promises';

/** Bytes and objects of one kind (V8 node type and constructor or closure name) in a heap snapshot. */
export interface HeapKind {
  readonly count: number;
  readonly bytes: number;
}

/** What a `.heapsnapshot` file holds, as far as this summary reads it. */
interface HeapSnapshotFile {
  readonly snapshot: { readonly meta: { readonly node_fields: readonly string[]; readonly node_types: readonly [readonly string[], ...unknown[]] } };
  readonly nodes: readonly number[];
  readonly strings: readonly string[];
}

/** Kinds whose names are contents, not types: strings and numbers by value, code by function. */
function kindName(type: string, name: string): string {
  if (type.includes('string')) return `${type}`;
  if (type === 'code' || type === 'number') return type;
  return `${type}: ${name.slice(0, 70)}`;
}

/**
 * Self sizes of a V8 heap snapshot summed by kind. Self size only: what each object itself
 * takes, so the sum over every kind is the heap, and a difference of two summaries shows what
 * was added between them, kind by kind.
 */
export async function summarizeHeapSnapshot(path: string): Promise<Map<string, HeapKind>> {
  const file = JSON.parse(await readFile(path, 'utf8')) as HeapSnapshotFile;
  const fields = file.snapshot.meta.node_fields;
  const types = file.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const summary = new Map<string, HeapKind>();
  for (let index = 0; index < file.nodes.length; index += fields.length) {
    const type = types[file.nodes[index + typeAt] as number] ?? 'unknown';
    const key = kindName(type, file.strings[file.nodes[index + nameAt] as number] ?? '');
    const kind = summary.get(key) ?? { count: 0, bytes: 0 };
    summary.set(key, { count: kind.count + 1, bytes: kind.bytes + (file.nodes[index + sizeAt] as number) });
  }
  return summary;
}

/** `after - before`, kind by kind, divided by `per` (connections). */
export function heapDifference(before: ReadonlyMap<string, HeapKind>, after: ReadonlyMap<string, HeapKind>, per: number): Map<string, HeapKind> {
  const difference = new Map<string, HeapKind>();
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const [a, b] = [before.get(key) ?? { count: 0, bytes: 0 }, after.get(key) ?? { count: 0, bytes: 0 }];
    difference.set(key, { count: (b.count - a.count) / per, bytes: (b.bytes - a.bytes) / per });
  }
  return difference;
}

/** Total bytes of a summary. */
export function heapBytes(summary: ReadonlyMap<string, HeapKind>): number {
  let bytes = 0;
  for (const kind of summary.values()) bytes += kind.bytes;
  return bytes;
}
