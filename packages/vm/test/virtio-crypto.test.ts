import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CryptoBackend } from '@vaccel/vhost-user';
import pino from 'pino';
import { buildGuest, type GuestImage } from '../src/build.js';
import { runInGuest } from '../src/run.js';
import { GUEST_TIMEOUT_S, SUITE_TIMEOUT_MS, TEST_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const skip = vmSkipReason(['openssl']);

/** The host's `openssl enc` output for `input`. */
function opensslEnc(bits: number, key: string, iv: string, input: Buffer, pad = true): string {
  const args = ['enc', `-aes-${bits}-cbc`, '-K', key, '-iv', iv, ...(pad ? [] : ['-nopad'])];
  const result = spawnSync('openssl', args, { input, maxBuffer: 1 << 26 });
  assert.equal(result.status, 0, String(result.stderr));
  return createHash('sha256').update(result.stdout).digest('hex');
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

suite('virtio-crypto: the guest kernel offloads AES-CBC to our vhost-user backend', {
  skip,
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  let image: GuestImage;
  let backend: CryptoBackend;
  let dir: string;
  before(async () => {
    image = await buildGuest(`${root}.vm`);
    dir = mkdtempSync(join(tmpdir(), 'vaccel-crypto-e2e-'));
    backend = await CryptoBackend.listen({
      socket: join(dir, 'crypto.sock'),
      logger: pino({ level: 'silent' }),
    });
  });
  after(async () => {
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('kcapi-enc with virtio_crypto_aes_cbc equals openssl enc on the host, and decrypts back', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const cases = [
      {
        bits: 128,
        file: '/examples/eagle.jpg',
        host: readFileSync(`${root}examples/images/eagle.jpg`),
        pad: true,
      },
      {
        bits: 256,
        file: '/examples/cat.jpg',
        host: readFileSync(`${root}examples/images/cat.jpg`),
        pad: true,
      },
      // Whole blocks: kcapi-enc adds no padding then, so compare with openssl enc -nopad.
      { bits: 192, file: '/tmp/zeros', host: Buffer.alloc(65536), pad: false },
    ].map((c) => ({
      ...c,
      key: randomBytes(c.bits / 8).toString('hex'),
      iv: randomBytes(16).toString('hex'),
    }));
    // Kept short: the command travels on the kernel command line (2 KiB at most).
    const script = [
      'set -e',
      "grep -A6 'driver *: virtio_crypto_aes_cbc' /proc/crypto | grep selftest",
      'dd if=/dev/zero of=/tmp/zeros bs=1024 count=64 2>/dev/null',
      'k(){ kcapi-enc $1 -c virtio_crypto_aes_cbc --iv $2 --keyfd 3 -i $3 -o $4 3</tmp/key; }',
      'f(){ echo $2|xxd -r -p>/tmp/key; k -e $3 $1 /tmp/s; echo s$4 $(sha256sum</tmp/s); k -d $3 /tmp/s /tmp/o; echo o$4 $(sha256sum</tmp/o); }',
      ...cases.map((c) => `f ${c.file} ${c.key} ${c.iv} ${c.bits}`),
    ].join('\n');
    const before = backend.stats();
    const guest = await runInGuest(image, ['sh', '-c', script], {
      cryptoSocket: backend.socket,
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
    });
    assert.equal(guest.exitCode, 0, guest.output);
    assert.match(
      guest.output,
      /selftest\s*: passed/,
      'the kernel self-tested the driver through our backend',
    );
    for (const c of cases) {
      const sealed = new RegExp(`^s${c.bits} ([0-9a-f]{64})`, 'm').exec(guest.output)?.[1];
      const opened = new RegExp(`^o${c.bits} ([0-9a-f]{64})`, 'm').exec(guest.output)?.[1];
      assert.equal(sealed, opensslEnc(c.bits, c.key, c.iv, c.host, c.pad), `AES-${c.bits}-CBC ciphertext`);
      assert.equal(opened, sha256(c.host), `AES-${c.bits}-CBC round trip`);
    }
    const stats = backend.stats();
    const plaintext = cases.reduce((n, c) => n + c.host.byteLength, 0);
    assert.ok(
      stats.bytes - before.bytes >= 2 * plaintext,
      `the backend ciphered the data (${JSON.stringify(stats)})`,
    );
    assert.equal(stats.failed, before.failed, 'no request failed');
  });
});
