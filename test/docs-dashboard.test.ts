import test from 'ava';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fleetgate } from './helpers/cli.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, fencedBlocks } from './helpers/doc-script.ts';

/*
 * docs/dashboard.md: every option it lists is one `fleetgate dashboard --help` documents (and the
 * other way round), every screenshot it shows exists, and its commands are the CLI's.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'dashboard.md');

test('docs/dashboard.md lists the options of fleetgate dashboard --help, and its screenshots exist', async (t) => {
  const guide = await readFile(GUIDE, 'utf8');
  const help = await fleetgate(['dashboard', '--help']);
  t.is(help.code, 0);
  const helpFlags = new Set([...help.stdout.matchAll(/^\s+(--[a-z]+)/gm)].map((match) => match[1] ?? ''));
  const table = guide.slice(guide.indexOf('| option | meaning |'), guide.indexOf('## Security model'));
  const documented = new Set([...table.matchAll(/^\| `([^|]+)` \|/gm)].flatMap((match) => [...(match[1] ?? '').matchAll(/--[a-z]+/g)].map((flag) => flag[0])));
  for (const flag of documented) t.true(helpFlags.has(flag), `--help documents ${flag}`);
  for (const flag of helpFlags) t.true(flag === '--help' || documented.has(flag), `docs/dashboard.md documents ${flag}`);
  const images = [...guide.matchAll(/!\[[^\]]*\]\((img\/[^)]+\.png)\)/g)].map((match) => match[1] ?? '');
  t.true(images.length >= 6, 'a screenshot of each page');
  for (const image of images) await t.notThrowsAsync(access(join(REPO_ROOT, 'docs', image)), image);
  for (const block of fencedBlocks(guide)) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language`);
    if (block.language === 'bash') t.regex(block.body, /^npx fleetgate dashboard --data \.\/data$/m, `line ${block.line}: the command as operator.md's walk-through leaves things`);
  }
});
