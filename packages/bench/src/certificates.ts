/**
 * Throwaway TLS material made with openssl, for the TLS benchmark and tests: a CA, a server
 * certificate for 127.0.0.1 and localhost, and optionally a client certificate (mutual TLS) and a
 * second, unrelated CA.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Writes `ca.pem`/`ca.key`, `server.pem`/`server.key` and, when asked, `client.pem`/`client.key`
 * and `other-ca.pem` into `dir`. @throws when openssl is missing.
 */
export function makeCertificates(dir: string, options: { client?: boolean; otherCa?: boolean } = {}): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=vaccel-test-ca',
  );
  if (options.otherCa)
    openssl(
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'other-ca.key',
      '-out',
      'other-ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=other-ca',
    );
  const certs: [string, string, string][] = [['server', 'serverAuth', 'IP:127.0.0.1,DNS:localhost']];
  if (options.client) certs.push(['client', 'clientAuth', 'DNS:guest']);
  for (const [name, usage, san] of certs) {
    openssl('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(
      join(dir, `${name}.ext`),
      `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=${usage}\n`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  }
}
