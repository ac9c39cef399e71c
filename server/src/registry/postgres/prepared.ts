import { createHash } from 'node:crypto';
import type pg from 'pg';

/** Statement names by SQL text: one per distinct constant statement of this module's callers. */
const names = new Map<string, string>();

/**
 * A query as a named (prepared) statement: node-pg sends Parse once per connection and from then
 * on only Bind and Execute, so PostgreSQL stops parsing, analysing and planning the same statement
 * again on every call. Measured on the enrollment path (getDevice and a commitIssuance round):
 * PostgreSQL's CPU per enrollment halved (docs/benchmarks.md, "Enrollment on PostgreSQL").
 *
 * For constant SQL only: each distinct text becomes a statement kept by every pooled connection
 * for its life, so text built from values (a LIMIT, a list of conditions) must not come here.
 * The name is derived from the text, so the same text always has the same name and two texts
 * never share one (node-pg refuses a name reused for another text).
 *
 * A pooler in front of PostgreSQL must keep prepared statements per client (PgBouncer in
 * transaction mode does from 1.21 with max_prepared_statements; session mode always does).
 */
export function prepared(text: string, values: unknown[] = []): pg.QueryConfig {
  let name = names.get(text);
  if (name === undefined) {
    name = `fleetgate_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return { name, text, values };
}
