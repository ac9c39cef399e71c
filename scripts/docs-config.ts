/** `npm run docs:config`: writes docs/configuration.md from the configuration schema. */
import { writeFile } from 'node:fs/promises';
import { renderConfigReference } from './config-reference.ts';

const target = new URL('../docs/configuration.md', import.meta.url);
await writeFile(target, renderConfigReference());
process.stdout.write(`wrote ${target.pathname}\n`);
