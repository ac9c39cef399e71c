import { onlyFields, readJson, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';

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
    const report = await context.importBatches(`operator:${request.operator}`);
    context.logger.info({ batches: report.batches.length, credentials: report.credentials.length, invalid: report.invalid.length, operator: request.operator }, 'record files imported');
    sendJson(request.response, 200, report);
  },
};
