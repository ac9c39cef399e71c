import { resolve } from 'node:path';
import { loadAuthorityFromDataDir, readCertificateFile } from '../../datadir/authorities.ts';
import { dataLayout, resolveDataDir } from '../../datadir/layout.ts';
import { issueBootstrapBatch, MAX_BATCH } from '../../factory/bootstrap-batch.ts';
import { integerOption, requireString, UsageError, type Command } from '../args.ts';

export const bootstrapIssueCommand: Command = {
  path: ['bootstrap', 'issue'],
  help: `Usage: fleetgate bootstrap issue [--data DIR] --model M --count N --out DIR [--valid-days D] [--id-prefix P] [--json]

Issues N factory (bootstrap) credentials for devices of model M, offline: it needs only
ca/factory.key and the CA certificates, no running server and no registry. Writes into --out:
  <id>.crt        bootstrap certificate (CN=<id>, OU=<model>) followed by the factory CA
  <id>.key        the device's bootstrap key, PKCS#8 PEM, mode 0600 (flash it, then destroy it)
  root.crt        the trust anchor the device pins
  manifest.json   id, model, serial, expiry per device (also manifest.csv); importable as an allow-list
The batch is also recorded in <data>/batches/bootstrap-<batch id>.json: the server imports it at
start or on \`fleetgate bootstrap import\`, and lists its ids as provisioned (\`fleetgate device list
--state provisioned\`) until they enroll; a lost unit can be revoked before its first boot.
Device ids look like <model>-<12 hex digits>, a form reserved for this fleet's own factory CA.
A manufacturer whose devices another fleetgate trusts gives --id-prefix (acme.): its ids are then
<prefix><model>-<12 hex digits>, inside the namespace that fleet registers for it. Existing files
are never overwritten; a second batch into the same folder adds to the manifest.

Options:
  --data DIR          data directory holding ca/factory.key (default ./data or $FLEETGATE_DATA)
  --model M           device model: lower-case letters, digits, dashes (thermostat, camera, car ...)
  --count N           how many devices (1 to ${MAX_BATCH})
  --out DIR           output folder
  --valid-days D      bootstrap certificate lifetime in days (default 3650)
  --id-prefix P       ids <P><model>-<12 hex> (a manufacturer's namespace, e.g. acme.; with "." or "_")
  --json              print the manifest entries of this batch as JSON
  -h, --help          this help`,
  options: {
    data: { type: 'string' },
    model: { type: 'string' },
    count: { type: 'string' },
    out: { type: 'string' },
    'valid-days': { type: 'string' },
    'id-prefix': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values) {
    const dataDir = resolveDataDir(values.data as string | undefined);
    const model = requireString(values, 'model');
    const count = integerOption(values, 'count', Number.NaN, 1, MAX_BATCH);
    if (Number.isNaN(count)) throw new UsageError('--count is required');
    const outDir = resolve(requireString(values, 'out'));
    const validDays = integerOption(values, 'valid-days', 3650, 1, 36_500);
    const factory = await loadAuthorityFromDataDir(dataDir, 'factory');
    const root = await readCertificateFile(dataLayout(dataDir).rootCert);
    const interactive = process.stderr.isTTY && !values.json;
    const step = Math.max(1, Math.floor(count / 20));
    const manifest = await issueBootstrapBatch({
      factory,
      root,
      model,
      count,
      outDir,
      validDays,
      dataDir,
      ...(typeof values['id-prefix'] === 'string' ? { idPrefix: values['id-prefix'] } : {}),
      onProgress(done, total) {
        if (done % step !== 0 && done !== total) return;
        if (interactive) process.stderr.write(`\rissued ${done}/${total}`);
        else if (!values.json) process.stderr.write(`issued ${done}/${total}\n`);
      },
    });
    if (interactive) process.stderr.write('\n');
    const batch = manifest.devices.slice(-count);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ outDir, batch: manifest.batch, devices: batch }, null, 2)}\n`);
    } else {
      process.stdout.write(`${count} ${model} bootstrap credentials in ${outDir} (manifest: ${outDir}/manifest.json)\n`);
      process.stdout.write(`batch ${manifest.batch ?? '?'} recorded in ${dataDir}/batches: the server lists its ids as provisioned after its next start or \`fleetgate bootstrap import\`\n`);
    }
    return 0;
  },
};
