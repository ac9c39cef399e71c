import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';

const docs = new URL('../docs/', import.meta.url);

/**
 * One meaning per file name across the guides: `device-chain.pem` (and `device-new-chain.pem`)
 * is what EST returned, the certificate followed by the issuing CA, the file a device presents;
 * `device.crt` (`device-new.crt`) is the certificate alone, taken from it with `openssl x509`.
 */
test('every guide names an EST answer *-chain.pem and the certificate alone *.crt', async (t) => {
  const pages = (await readdir(docs)).filter((name) => name.endsWith('.md'));
  let answers = 0;
  for (const page of pages) {
    const text = await readFile(new URL(page, docs), 'utf8');
    // The answers of simpleenroll and simplereenroll (cacerts.pem, the CA certificates, is another thing).
    for (const [, out] of text.matchAll(/(?:enroll|renew)\.b64"? \| openssl pkcs7 -inform DER -print_certs -out "?([^"\s]+)"?/g)) {
      answers += 1;
      t.regex(out ?? '', /-chain\.pem$/, `${page}: the certificates of an EST answer go to a *-chain.pem file, not ${out}`);
    }
    for (const [, input, out] of text.matchAll(/openssl x509 -in "?([^"\s]+-chain\.pem)"? -out "?([^"\s]+)"?/g)) {
      t.is(out, input?.replace(/-chain\.pem$/, '.crt'), `${page}: the certificate alone of ${input}`);
    }
    t.notRegex(text, /device-chain\.crt|device\.pem\b/, `${page}: no third name for the same files`);
  }
  t.true(answers >= 4, 'enrollment.md, broker.md and operator.md decode EST answers');
});
