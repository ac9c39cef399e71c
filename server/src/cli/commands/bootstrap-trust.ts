import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { MAX_ADMIN_BODY } from '../../admin/http.ts';
import { isFactoryDeviceId, NAMESPACE_PATTERN } from '../../authority/identity.ts';
import { fromPem } from '../../pki/pem.ts';
import { requireString, UsageError, type Command } from '../args.ts';
import { adminCommand, stringOption } from '../admin-command.ts';
import { pemCertificates, readInputFile } from '../admin-client.ts';
import { parseAllowList, type AllowList } from '../allowlist.ts';
import { isTrustAnswer, isTrustList, isTrustRemoved } from '../api-types.ts';
import type { TrustView } from '../../admin/wire.ts';
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

/** What a trust admits, in words: its namespace and/or allow-list. */
function describeScope(namespace: string | null, allowListSize: number | null): string {
  if (namespace === null && allowListSize === null) return 'none: refused (ENROLL_TRUST_UNSCOPED) until registered again with --replace and --namespace or --allowlist';
  const parts = [namespace === null ? undefined : `ids starting with ${namespace}`, allowListSize === null ? undefined : `the ${count(allowListSize, 'device')} of the allow-list`];
  return parts.filter((part) => part !== undefined).join(', and only ');
}

function describeTrust(trust: TrustView): string {
  try {
    return commonName(new X509Certificate(fromPem(trust.caPem, 'CERTIFICATE')));
  } catch {
    return '?';
  }
}

/** `fleetgate bootstrap trust`: checks the PEM bundle and the allow-list locally, then PUT /v1/trusts/:name. */
export const bootstrapTrustCommand: Command = adminCommand({
  path: ['bootstrap', 'trust'],
  usage: '--name N --ca FILE --model M (--namespace PREFIX | --allowlist FILE | both) [--replace] [--json]',
  description: `Registers a manufacturer's CA as a bootstrap trust: devices whose factory certificate it signed
may enroll over EST (simpleenroll) as devices of model M, but only under the ids the trust
covers. The EST listener picks it up at once, no restart. A CA can be trusted once: registering
a CA that is already trusted (under any name) is refused with the existing trust's name
(ADMIN_TRUST_EXISTS). Changing an existing trust (model, namespace, allow-list) takes --replace;
registering it again unchanged is a no-op that says so.

A trust needs --namespace, --allowlist or both (with both, an id must satisfy each):
  --namespace PREFIX  the trust covers device ids that start with PREFIX, e.g. acme. for
                      acme.atm-0001; 2 to 48 characters ending with ".", "_" or "-"; it may
                      not overlap the namespace of another trust.
Ids of the form of fleetgate's own factory ids (<model>-<12 hex>, what \`fleetgate bootstrap
issue\` makes) are reserved for the fleetgate factory CA: no trust may vouch for one.

FILE is a PEM bundle: the manufacturer CA that signs the devices' bootstrap certificates first,
then the CAs above it, up to and including its self-signed root.

The allow-list narrows the trust to the listed device ids. It is recognised by its content:
  - manifest.json or manifest.csv, as \`fleetgate bootstrap issue\` writes them (a manifest.json
    must belong to the CA in --ca: its factoryCa fingerprint is checked);
  - a JSON list of ids;
  - plain text, one device id per line (blank lines and # comments ignored).
Every id is checked before anything is sent; a bad file changes nothing.`,
  options: { name: { type: 'string' }, ca: { type: 'string' }, model: { type: 'string' }, namespace: { type: 'string' }, allowlist: { type: 'string' }, replace: { type: 'boolean' }, json: { type: 'boolean' } },
  optionsHelp: `  --name N            name of the trust: lower-case letters, digits, dashes (not fleetgate-factory)
  --ca FILE           the manufacturer CA and its chain up to its root, PEM
  --model M           the model every device admitted by this trust gets
  --namespace PREFIX  only device ids starting with PREFIX may enroll (e.g. acme.)
  --allowlist FILE    only these device ids may enroll (manifest.json, manifest.csv or one id per line)
  --replace           change the existing trust named N (its model, namespace and allow-list)
  --json              print the admin API's JSON (the trust, with namespace and allowListSize)`,
  positionals: [],
  async run({ values, connect }) {
    const name = requireString(values, 'name');
    const model = requireString(values, 'model');
    const caPath = resolve(requireString(values, 'ca'));
    const allowListPath = stringOption(values, 'allowlist');
    const namespace = stringOption(values, 'namespace');
    if (namespace === undefined && allowListPath === undefined) {
      throw new UsageError('--namespace PREFIX or --allowlist FILE is required: a trust without either would let the manufacturer enroll devices under any id');
    }
    if (namespace !== undefined && !NAMESPACE_PATTERN.test(namespace)) {
      throw new UsageError(`--namespace ${JSON.stringify(namespace)}: give a device-id prefix of 2 to 48 characters (lower-case letters, digits, ".", "_", "-") ending with ".", "_" or "-", e.g. acme.`);
    }
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
      const reserved = allowList.ids.filter(isFactoryDeviceId);
      if (reserved.length > 0) {
        throw new CliError(
          'CLI_INPUT_INVALID',
          `--allowlist ${path} holds ${count(reserved.length, 'id')} in the form of fleetgate factory ids (<model>-<12 hex>, e.g. ${reserved[0]}): those are reserved for the fleetgate factory CA; the manufacturer's ids must differ (e.g. a prefix such as acme.)`,
        );
      }
      const outside = namespace === undefined ? [] : allowList.ids.filter((id) => !id.startsWith(namespace));
      if (outside.length > 0) throw new CliError('CLI_INPUT_INVALID', `--allowlist ${path} holds ${count(outside.length, 'id')} outside --namespace ${namespace} (e.g. ${outside[0]})`);
      const others = allowList.models.filter((listed) => listed !== model);
      if (others.length > 0) process.stderr.write(`note: ${path} lists devices of model ${others.join(', ')}; through this trust they enroll as model ${model}\n`);
    }
    const body = {
      model,
      caPem: certificates.map((certificate) => certificate.toString()).join(''),
      ...(namespace !== undefined ? { namespace } : {}),
      ...(allowList ? { allowList: allowList.ids } : {}),
    };
    const size = Buffer.byteLength(JSON.stringify(body));
    if (size > MAX_ADMIN_BODY) {
      throw new CliError('CLI_INPUT_INVALID', `the registration is ${size} bytes, more than the admin API accepts (${MAX_ADMIN_BODY}): split the allow-list over several trusts`);
    }
    const client = await connect();
    const answer = await client.json('PUT', trustPath(name), isTrustAnswer, { body, query: { replace: values.replace === true ? 'true' : undefined } });
    if (values.json) {
      printJson(answer);
      return 0;
    }
    const { trust } = answer;
    const verb = answer.changed === false ? 'unchanged:' : answer.replaced === true ? 'replaced' : 'added';
    print(`${verb} bootstrap trust ${trust.name}: devices with a factory certificate from "${commonName(ca)}" enroll as model ${trust.model}${answer.changed === false ? ' (already registered exactly so; nothing changed)' : ''}`);
    print(`  CA fingerprint  ${trust.fingerprint}`);
    print(`  namespace       ${trust.namespace ?? 'none'}`);
    print(`  allow-list      ${allowList ? `${count(allowList.ids.length, 'device')} (from ${allowList.format})` : 'none'}`);
    print(`  admits          ${describeScope(trust.namespace, trust.allowListSize)}`);
    return 0;
  },
});

/** `fleetgate bootstrap list` (GET /v1/trusts). */
export const bootstrapListCommand: Command = adminCommand({
  path: ['bootstrap', 'list'],
  usage: '[--json]',
  description: `Lists the manufacturer CAs trusted for bootstrap enrollment: name, the model their devices get,
the id namespace, the CA's CommonName and SHA-256 fingerprint, the size of the allow-list, when
and by whom it was registered. fleetgate's own factory CA (<data>/ca/factory.crt) is always
trusted and not listed. A trust with neither namespace nor allow-list (registered before
namespaces existed) admits nobody until it is registered again: the list warns about it.`,
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
        ['NAME', 'MODEL', 'NAMESPACE', 'CA', 'FINGERPRINT', 'ALLOW-LIST', 'ADDED', 'BY'],
        trusts.map((trust) => [
          trust.name,
          trust.model,
          trust.namespace ?? 'none',
          describeTrust(trust),
          shortFingerprint(trust.fingerprint),
          trust.allowListSize === null ? 'none' : count(trust.allowListSize, 'device'),
          shortTime(trust.createdAt),
          trust.actor,
        ]),
      ),
    );
    print(`${count(trusts.length, 'trust')} (and the fleetgate factory CA)`);
    for (const trust of trusts.filter((candidate) => candidate.namespace === null && candidate.allowListSize === null)) {
      print(`warning: trust ${trust.name} has neither a namespace nor an allow-list: its devices are refused (ENROLL_TRUST_UNSCOPED) until you register it again with --replace and --namespace or --allowlist`);
    }
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
