// Builds the dashboard's page into dist/ui/: one JavaScript bundle (Preact and the pages, minified
// by esbuild), one stylesheet and index.html. Run by `npm run build` of this package, so the
// files ship in the package; `fleetgate dashboard` serves them (src/dashboard/assets.ts). Nothing
// is loaded from anywhere else at run time (the page's Content-Security-Policy forbids it).
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here('../dist/ui/');

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [here('src/main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: `${out}app.js`,
  legalComments: 'eof',
  logLevel: 'warning',
});
await copyFile(here('index.html'), `${out}index.html`);
await copyFile(here('src/app.css'), `${out}app.css`);
