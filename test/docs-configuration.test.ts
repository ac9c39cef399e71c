import test from 'ava';
import { readFile } from 'node:fs/promises';
import { DEFAULT_CONFIG } from '../server/src/config/config.ts';
import { renderConfigReference } from '../scripts/config-reference.ts';

const docs = new URL('../docs/', import.meta.url);

/** Every setting of a configuration object as a dotted path (map entries included). */
function paths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => paths(child, prefix ? `${prefix}.${key}` : key));
}

test('docs/configuration.md is what `npm run docs:config` generates from the schema', async (t) => {
  const committed = await readFile(new URL('configuration.md', docs), 'utf8');
  // On failure: run `npm run docs:config` and commit docs/configuration.md.
  t.is(committed, renderConfigReference());
});

test('docs/configuration.md has a row for every setting of DEFAULT_CONFIG', async (t) => {
  const page = await readFile(new URL('configuration.md', docs), 'utf8');
  const rows = new Set([...page.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1]));
  const generic = (path: string): string =>
    path.replace(/^enrollment\.models\.[^.]+\./, 'enrollment.models.<model>.').replace(/^broker\.topics\.models\.[^.]+\./, 'broker.topics.models.<model>.').replace(/^broker\.services\.[^.]+\./, 'broker.services.<service>.');
  for (const path of paths(DEFAULT_CONFIG)) t.true(rows.has(generic(path)), path);
});

test('README and the guides that mention settings link to docs/configuration.md', async (t) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  t.true(readme.includes('](docs/configuration.md'), 'README.md');
  for (const page of ['security.md', 'broker.md', 'enrollment.md']) {
    t.true((await readFile(new URL(page, docs), 'utf8')).includes('](configuration.md'), page);
  }
});
