import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { MAX_ADMIN_BODY } from '../../admin/http.ts';
import { fromPem } from '../../pki/pem.ts';
import { requireString, type Command } from '../args.ts';
import { adminCommand, stringOption } from '../admin-command.ts';
import { pemCertificates, readInputFile } from '../admin-client.ts';
import { parseAllowList, type AllowList } from '../allowlist.ts';
import { isTrustAnswer, isTrustList, isTrustRemoved, type TrustSummary } from '../api-types.ts';
import { CliError } from '../errors.ts';
import { count, print, printJson, shortTime, table } from '../format.ts';

const trustPath = (name: string): string => `/v1/trusts/${encodeURIComponent(name)}`;

/** The CommonName of a certificate's subject (or the whole subject). */
function commonName(certificate: X509Certificate): string {
  const line = certificate.subject.split('\n').find((entry) => entry.startsWith('CN='));
  return line ? line.slice(3) : certificate.subject.replace(/\n/g, ', ');
}

/** Fingerprints as Node prints them, shortened for a table: the first 8 bytes. */
const shortFingerprint = (fingerprint: string): string => (fingerprint.length > 23 ? `${fingerprint.slice(0, 23)}...` : fingerprint);

function describeTrust(trust: TrustSummary): string {
  try {
    return commonName(new X509Certificate(fromPem(trust.caPem, 'CERTIFICATE')));
  } catch {
    return '?';
  }
}

/** `fleetgate bootstrap trust`: checks the PEM bundle and the allow-list locally, then PUT /v1/trusts/:name. */
export const bootstrapTrustCommand: Command = adminCommand({
  path: ['bootstrap', 'trust'],
  usage: '--name N --ca FILE --model M [--allowlist FILE] [--json]',
  description: `Registers a manufacturer's CA as a bootstrap trust: devices whose factory certificate it signed
may enroll over EST (simpleenroll) as devices of model M. The EST listener picks it up at once,
no restart. Registering a name again replaces that trust (allow-list included: without
--allowlist the new registration has none).

FILE is a PEM bundle: the manufacturer CA that signs the devices' bootstrap certificates first,
then the CAs above it, up to and including its self-signed root.

The allow-list narrows the trust to the listed device ids. It is recognised by its content:
  - manifest.json or manifest.csv, as \`fleetgate bootstrap issue\` writes them (a manifest.json
    must belong to the CA in --ca: its factoryCa fingerprint is checked);
  - a JSON list of ids;
  - plain text, one device id per line (blank lines and # comments ignored).
Every id is checked before anything is sent; a bad file changes nothing.`,
  options: { name: { type: 'string' }, ca: { type: 'string' }, model: { type: 'string' }, allowlist: { type: 'string' }, json: { type: 'boolean' } },
  optionsHelp: `  --name N            name of the trust: lower-case letters, digits, dashes (not fleetgate-factory)
  --ca FILE           the manufacturer CA and its chain up to its root, PEM
  --model M           the model every device admitted by this trust gets
  --allowlist FILE    only these device ids may enroll (manifest.json, manifest.csv or one id per line)
  --json              print the admin API's JSON (the trust, with allowListSize)`,
  positionals: [],
  async run({ values, connect }) {
    const name = requireString(values, 'name');
    const model = requireString(values, 'model');
    const caPath = resolve(requireString(values, 'ca'));
    const allowListPath = stringOption(values, 'allowlist');
    const certificates = pemCertificates(await readInputFile(caPath, '--ca'), `--ca ${caPath}`);
    const [ca] = certificates as [X509Certificate, ...X509Certificate[]];
    let allowList: AllowList | undefined;
    if (allowListPath !== undefined) {
      const path = resolve(allowListPath);
      allowList = parseAllowList((await readInputFile(path, '--allowlist')).toString('utf8'), `--allowlist ${path}`);
      if (allowList.factoryCa !== undefined && allowList.factoryCa !== ca.fingerprint256) {
        throw new CliError(
          'CLI_INPUT_INVALID',
          `--allowlist ${path} lists devices of the CA with fingerprint ${allowList.factoryCa}, but the first certificate of --ca ${caPath} (${commonName(ca)}) has ${ca.fingerprint256}: give the manifest of a batch this CA issued`,
        );
      }
      const others = allowList.models.filter((listed) => listed !== model);
      if (others.length > 0) process.stderr.write(`note: ${path} lists devices of model ${others.join(', ')}; through this trust they enroll as model ${model}\n`);
    }
    const body = { model, caPem: certificates.map((certificate) => certificate.toString()).join(''), ...(allowList ? { allowList: allowList.ids } : {}) };
    const size = Buffer.byteLength(JSON.stringify(body));
    if (size > MAX_ADMIN_BODY) {
      throw new CliError('CLI_INPUT_INVALID', `the registration is ${size} bytes, more than the admin API accepts (${MAX_ADMIN_BODY}): split the allow-list over several trusts`);
    }
    const client = await connect();
    const existing = await client.json('GET', '/v1/trusts', isTrustList);
    const answer = await client.json('PUT', trustPath(name), isTrustAnswer, { body });
    if (values.json) {
      printJson(answer);
      return 0;
    }
    const { trust } = answer;
    const replaced = existing.trusts.some((candidate) => candidate.name === trust.name);
    print(`${replaced ? 'replaced' : 'added'} bootstrap trust ${trust.name}: devices with a factory certificate from "${commonName(ca)}" enroll as model ${trust.model}`);
    print(`  CA fingerprint  ${trust.fingerprint}`);
    print(`  allow-list      ${allowList ? `${count(allowList.ids.length, 'device')} (from ${allowList.format})` : 'none: every device of this CA may enroll'}`);
    return 0;
  },
});

/** `fleetgate bootstrap list` (GET /v1/trusts). */
export const bootstrapListCommand: Command = adminCommand({
  path: ['bootstrap', 'list'],
  usage: '[--json]',
  description: `Lists the manufacturer CAs trusted for bootstrap enrollment: name, the model their devices get,
the CA's CommonName and SHA-256 fingerprint, the size of the allow-list, when and by whom it was
registered. fleetgate's own factory CA (<data>/ca/factory.crt) is always trusted and not listed.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON ({ "trusts": [...] }, caPem included)',
  positionals: [],
  async run({ values, connect }) {
    const { trusts } = await (await connect()).json('GET', '/v1/trusts', isTrustList);
    if (values.json) {
      printJson({ trusts });
      return 0;
    }
    if (trusts.length === 0) {
      print('no manufacturer CAs trusted (the fleetgate factory CA always is)');
      return 0;
    }
    print(
      table(
        ['NAME', 'MODEL', 'CA', 'FINGERPRINT', 'ALLOW-LIST', 'ADDED', 'BY'],
        trusts.map((trust) => [
          trust.name,
          trust.model,
          describeTrust(trust),
          shortFingerprint(trust.fingerprint),
          trust.allowListSize === null ? 'none' : count(trust.allowListSize, 'device'),
          shortTime(trust.createdAt),
          trust.actor,
        ]),
      ),
    );
    print(`${count(trusts.length, 'trust')} (and the fleetgate factory CA)`);
    return 0;
  },
});

/** `fleetgate bootstrap untrust N` (DELETE /v1/trusts/:name). */
export const bootstrapUntrustCommand: Command = adminCommand({
  path: ['bootstrap', 'untrust'],
  usage: 'N [--json]',
  description: `Removes the bootstrap trust named N: from now on EST refuses enrollments with its factory
certificates (ENROLL_CLIENT_CERT_UNTRUSTED). Devices that already enrolled through it keep their
operational certificates and renew as usual; revoke them one by one if they must go.`,
  options: { json: { type: 'boolean' } },
  optionsHelp: '  --json              print the admin API\'s JSON ({ "removed": N })',
  positionals: ['N'],
  async run({ values, args, connect }) {
    const [name = ''] = args;
    const answer = await (await connect()).json('DELETE', trustPath(name), isTrustRemoved);
    if (values.json) printJson(answer);
    else print(`removed bootstrap trust ${answer.removed}: its factory certificates can no longer enroll`);
    return 0;
  },
});
