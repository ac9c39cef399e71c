import { onlyFields, readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';
import { batchImportView } from '../wire.ts';

/**
 * POST /v1/batches/import — imports the record files of `<data>/batches/` now (what the server
 * also does at start): `bootstrap issue` batches become provisioned devices, `operator issue` and
 * `service issue` certificates are recorded. Idempotent (factory/batch-files.ts).
 */
export const importBatches: AdminRoute = {
  method: 'POST',
  path: '/v1/batches/import',
  async handle(request, context) {
    onlyFields(await readJson(request.request, request.response), []);
    sendJson(request.response, 200, batchImportView(await context.authority.importRecordFiles(request.operator)));
  },
};
