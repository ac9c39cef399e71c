import { readFile, readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError } from '../cli/errors.ts';

/**
 * Where the page's bundle is: `server/dist/ui/`, built by `npm run build` (ui/build.mjs) and
 * shipped in the package. The same path from `src/dashboard/` (sources, tests) and from
 * `dist/dashboard/` (the package).
 */
export const UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** One file of the page, held in memory (the whole bundle is tens of kilobytes). */
export interface Asset {
  readonly body: Buffer;
  readonly mediaType: string;
}

/** Reads the bundle: `/` is index.html, the rest by file name. Fails clearly when it was not built. */
export async function loadAssets(dir: string = UI_DIR): Promise<Map<string, Asset>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new CliError('CLI_DASHBOARD_NOT_BUILT', `the dashboard's page is not built (${dir} is missing): run \`npm run build\``, { cause: error });
  }
  if (!names.includes('index.html')) throw new CliError('CLI_DASHBOARD_NOT_BUILT', `the dashboard's page is not built (${dir} has no index.html): run \`npm run build\``);
  const assets = new Map<string, Asset>();
  for (const name of names) {
    const mediaType = MEDIA_TYPES[extname(name)];
    if (!mediaType) continue;
    const body = await readFile(join(dir, name));
    assets.set(name === 'index.html' ? '/' : `/${name}`, { body, mediaType });
  }
  return assets;
}
