import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_ERRORS, type AdminErrorCode } from '../server/src/admin/errors.ts';
import { readAudit, verifyAudit } from '../server/src/admin/routes/audit.ts';
import { currentCrl } from '../server/src/admin/routes/crl.ts';
import { disableDevice, enableDevice, listDevices, resetDevice, revokeDevice, showDevice } from '../server/src/admin/routes/devices.ts';
import { deleteTrust, listTrusts, putTrust } from '../server/src/admin/routes/trusts.ts';
import { fleetSummary, liveEvents } from '../server/src/admin/routes/fleet.ts';
import { importBatches } from '../server/src/admin/routes/batches.ts';
import { listOperators, listServices, revokeOperators, revokeServices } from '../server/src/admin/routes/credentials.ts';
import type { AdminRoute } from '../server/src/admin/routes/types.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, fencedBlocks } from './helpers/doc-script.ts';

/*
 * docs/admin-api.md is the reference of the admin API: it documents exactly the routes the server
 * has (one "### `METHOD /path`" section each), and the status it gives next to an error code is
 * the code's status in ADMIN_ERRORS.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'admin-api.md');
const ROUTES: readonly AdminRoute[] = [listDevices, showDevice, revokeDevice, disableDevice, enableDevice, resetDevice, listTrusts, putTrust, deleteTrust, readAudit, verifyAudit, currentCrl, importBatches, listOperators, listServices, revokeOperators, revokeServices, fleetSummary, liveEvents];

test('docs/admin-api.md has one section per admin route, and no section for a route that does not exist', async (t) => {
  const guide = await readFile(GUIDE, 'utf8');
  const documented = [...guide.matchAll(/^### `(GET|POST|PUT|DELETE) (\/\S+)`$/gm)].map((match) => `${match[1]} ${match[2]}`);
  t.deepEqual([...documented].sort(), ROUTES.map((route) => `${route.method} ${route.path}`).sort());
  for (const block of fencedBlocks(guide)) t.true(DOC_FENCE_LANGUAGES.has(block.language) && block.language !== 'bash', `line ${block.line}: a reference shows (console, text), it runs nothing`);
});

test('the error codes docs/admin-api.md names exist, each with the status the server sends', async (t) => {
  const guide = await readFile(GUIDE, 'utf8');
  const isCode = (code: string): code is AdminErrorCode => Object.hasOwn(ADMIN_ERRORS, code);
  const named = new Set([...guide.matchAll(/\bADMIN_[A-Z_]+\b/g)].map((match) => match[0]));
  for (const code of named) t.true(isCode(code), `${code} is not in ADMIN_ERRORS`);
  for (const code of Object.keys(ADMIN_ERRORS)) t.true(named.has(code), `${code} is not documented`);
  const pairs = [...guide.matchAll(/\b([45]\d\d) `(ADMIN_[A-Z_]+)`/g)];
  t.true(pairs.length >= 15, 'the guide pairs statuses with codes');
  for (const [, status, code = ''] of pairs) t.is(isCode(code) ? Number(ADMIN_ERRORS[code]) : undefined, Number(status), `the guide says ${status} for ${code}`);
});
