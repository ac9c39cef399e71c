import { resolve } from 'node:path';
import { writeFileAtomic } from '../../fs-atomic.ts';
import { toPem } from '../../pki/pem.ts';
import { requireString, type Command } from '../args.ts';
import { adminCommand } from '../admin-command.ts';
import { CliError } from '../errors.ts';
import { print } from '../format.ts';

/** `fleetgate crl --out FILE` (GET /v1/crl). */
export const crlCommand: Command = adminCommand({
  path: ['crl'],
  usage: '--out FILE|- [--pem]',
  description: `Fetches the current certificate revocation list of the device-issuing CA (RFC 5280), signed
again by the server on every revocation, and writes it to FILE (replaced atomically), or to
stdout with --out - (then nothing else is printed there). Check it
with \`openssl crl -inform DER -in FILE -CAfile <data>/ca/issuing.crt -verify -noout -text\`.
The same CRL is published without authentication at https://HOST:EST_PORT/crl.`,
  options: { out: { type: 'string' }, pem: { type: 'boolean' } },
  optionsHelp: `  --out FILE|-        where to write the CRL; - for stdout
  --pem               write PEM (-----BEGIN X509 CRL-----) instead of DER`,
  positionals: [],
  async run({ values, connect }) {
    const target = requireString(values, 'out');
    const client = await connect();
    const der = await client.bytes('/v1/crl', 'application/pkix-crl');
    // A DER CertificateList is a SEQUENCE (RFC 5280 §5.1).
    if (der[0] !== 0x30) throw new CliError('CLI_BAD_RESPONSE', `the CRL from ${client.where} is not DER`);
    const contents = values.pem ? toPem('X509 CRL', der) : der;
    if (target === '-') {
      // stdout is the CRL itself: the confirmation line would corrupt it.
      await new Promise<void>((resolvePromise, reject) => process.stdout.write(contents, (error) => (error ? reject(error) : resolvePromise())));
      return 0;
    }
    const out = resolve(target);
    await writeFileAtomic(out, contents);
    print(`CRL written to ${out} (${values.pem ? `PEM, ${der.length} bytes as DER` : `DER, ${der.length} bytes`})`);
    return 0;
  },
});
