/**
 * Renders docs/configuration.md from the configuration schema (server/src/config/schema.ts):
 * every setting with its type, default, bounds and meaning. `npm run docs:config` writes the
 * file; test/docs-configuration.test.ts fails when the committed page differs from this output.
 */
import { CONFIG_SCHEMA, type SchemaNode } from '../server/src/config/schema.ts';

const INTRO = `# Configuration reference

<!-- Generated from server/src/config/schema.ts by \`npm run docs:config\`: edit the schema, not this page. -->

\`fleetgate serve\` reads its settings from \`<data>/config.json\` once, when it starts: restart
the server to apply a change. \`fleetgate init\` writes the file with every setting at its
default; a file may also set only what it changes, and every setting left out takes the
default below. The file is checked against a JSON Schema (server/src/config/schema.ts, the one
place a default is written): an unknown section or setting (a misspelt name), a value of the
wrong type or out of its bounds is refused, and the server does not start. The message names
the setting by its path, every problem at once, with the code \`CONFIG_INVALID\` (exit 1, see
[errors.md](errors.md#operator-cli-and-data-directory)):

\`\`\`
fleetgate: CONFIG_INVALID: data/config.json: broker.limits.maxConection is not a known setting
\`\`\`

Maps keyed by a name (\`<model>\`, \`<service>\`) say below whether the entries of a file are
added to the default ones or replace them. What the limits protect, and what an attacker
without credentials can still cost, is in [security.md](security.md); the enrollment policy in
[enrollment.md](enrollment.md#the-enrollment-policy); topics and broker limits in [broker.md](broker.md).
`;

/** `1048576` -> `1048576 (1 MiB)`: the unit a reader thinks in, from the setting's name. */
function withUnit(name: string, value: number): string {
  const plain = String(value);
  if (name.endsWith('Seconds') && value >= 3600) {
    return value % 86_400 === 0 ? `${plain} (${value / 86_400} day${value === 86_400 ? '' : 's'})` : `${plain} (${value / 3600} h)`;
  }
  if (name.endsWith('Ms') && value >= 1000) return `${plain} (${value / 1000} s)`;
  if (name.includes('Bytes') && value >= 1024) {
    return value % (1024 * 1024) === 0 ? `${plain} (${value / (1024 * 1024)} MiB)` : `${plain} (${value / 1024} KiB)`;
  }
  return plain;
}

function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

function typeOf(node: SchemaNode): string {
  if (node.enum) return 'string';
  if (node.type === 'array') return node.items?.enum ? 'list of strings' : 'list of topic filters';
  if (node.type === 'object') return 'map';
  return node.type;
}

function defaultOf(name: string, node: SchemaNode): string {
  if (node.default === undefined) return '(none)';
  if (typeof node.default === 'number') return withUnit(name, node.default);
  return code(node.default);
}

function boundsOf(node: SchemaNode): string {
  const bounds: string[] = [];
  if (node.enum) bounds.push(`one of ${node.enum.map((value) => `\`${value}\``).join(', ')}`);
  if (node.exclusiveMinimum !== undefined) bounds.push(`> ${node.exclusiveMinimum}`);
  if (node.minimum !== undefined && node.maximum !== undefined) bounds.push(`${node.minimum} to ${node.maximum}`);
  else if (node.minimum !== undefined) bounds.push(`>= ${node.minimum}`);
  else if (node.maximum !== undefined) bounds.push(`<= ${node.maximum}`);
  if (node.type === 'array') {
    if (node.items?.enum) bounds.push(`each one of ${node.items.enum.map((value) => `\`${value}\``).join(', ')}`);
    if (node.items?.pattern) bounds.push(`each ${node.items.description}`);
    if (node.minItems !== undefined) bounds.push(`at least ${node.minItems}`);
    if (node.uniqueItems) bounds.push('no repeats');
  }
  if (node.propertyNames) bounds.push(`names match \`${node.propertyNames.pattern}\``);
  return bounds.join('; ') || '-';
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** Table rows of a node and what is under it. `<name>` stands for a map's keys. */
function rows(path: string, node: SchemaNode, mapKey: string): string[] {
  const name = path.slice(path.lastIndexOf('.') + 1);
  if (node.type === 'object' && node.properties) {
    return Object.entries(node.properties).flatMap(([key, child]) => rows(`${path}.${key}`, child, mapKey));
  }
  const row = `| \`${path}\` | ${typeOf(node)} | ${cell(defaultOf(name, node))} | ${cell(boundsOf(node))} | ${cell(node.description)} |`;
  if (node.type === 'object' && typeof node.additionalProperties === 'object') {
    return [row, ...rows(`${path}.<${mapKey}>`, node.additionalProperties, mapKey)];
  }
  return [row];
}

/** The keys of a map, by what they name. */
const MAP_KEYS: Readonly<Record<string, string>> = { services: 'service' };

/** A section's heading, its description and its settings. */
function section(path: string, node: SchemaNode, level: number): string[] {
  const lines = [`${'#'.repeat(level)} \`${path}\``, '', node.description, ''];
  const leaves: string[] = [];
  const subsections: string[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const childPath = `${path}.${key}`;
    // A nested section (fixed keys of its own, several of them) gets its own heading.
    if (child.type === 'object' && child.properties && Object.keys(child.properties).length > 2) subsections.push(...section(childPath, child, level + 1));
    else leaves.push(...rows(childPath, child, MAP_KEYS[key] ?? 'model'));
  }
  if (leaves.length > 0) lines.push('| setting | type | default | bounds | meaning |', '| --- | --- | --- | --- | --- |', ...leaves, '');
  return [...lines, ...subsections];
}

/** The whole page. */
export function renderConfigReference(): string {
  const sections = Object.entries(CONFIG_SCHEMA.properties ?? {}).flatMap(([key, node]) => section(key, node, 2));
  return `${INTRO}\n${sections.join('\n').trimEnd()}\n`;
}
