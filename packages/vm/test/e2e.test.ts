import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { hostPlugins } from '@vaccel/plugin-onnx';
import { buildGuest, type GuestImage } from '../src/build.js';
import { jsonFromOutput, runInGuest } from '../src/run.js';
import { GUEST_TIMEOUT_S, SUITE_TIMEOUT_MS, TEST_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const skip = vmSkipReason();

suite('a QEMU guest offloads to the host agent over virtio-serial', {
  skip,
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  let image: GuestImage;
  before(async () => {
    image = await buildGuest(`${root}.vm`);
  });

  test('classify in the guest equals the host in-process result', { timeout: TEST_TIMEOUT_MS }, async () => {
    const guest = await runInGuest(image, ['vaccel', 'classify', '--json', '/examples/cat.jpg'], {
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
    });
    assert.equal(guest.exitCode, 0, guest.output);
    const fromGuest = jsonFromOutput<{ classes: unknown }>(guest.output);
    await using vaccel = await Vaccel.open({ plugins: hostPlugins() });
    await using session = await vaccel.createSession();
    const onHost = await session.imageClassify(readFileSync(`${root}examples/images/cat.jpg`));
    assert.deepEqual(fromGuest.classes, onHost);
  });

  test('sgemm and AES in the guest: checked product, ciphertext equal to the host OpenSSL', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const key = '000102030405060708090a0b0c0d0e0f';
    const iv = 'f0e0d0c0b0a090807060504030201000';
    const script = [
      'vaccel sgemm --n 128 --check',
      `vaccel encrypt --alg aes-128-cbc --key ${key} --iv ${iv} /examples/cat.jpg /tmp/sealed`,
      'sha256sum /tmp/sealed',
      'vaccel noop --help >/dev/null; echo vaccel-ops; vaccel ops',
    ].join(' && ');
    const guest = await runInGuest(image, ['sh', '-c', script], {
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
    });
    assert.equal(guest.exitCode, 0, guest.output);
    assert.match(guest.output, /sgemm 128×128 · 128×128 via remote: .*GFLOP\/s/);
    assert.match(guest.output, /check: ok/);
    const cipher = createCipheriv('aes-128-cbc', Buffer.from(key, 'hex'), Buffer.from(iv, 'hex'));
    const sealed = Buffer.concat([
      cipher.update(readFileSync(`${root}examples/images/cat.jpg`)),
      cipher.final(),
    ]);
    assert.match(
      guest.output,
      new RegExp(`^${createHash('sha256').update(sealed).digest('hex')}\\s+/tmp/sealed$`, 'm'),
    );
    // The guest lists the agent's operations, the heavy ones included: it runs none of them itself.
    assert.match(guest.output, /image_classify\s+remote/);
  });

  test('the batch example function runs in the guest as on the host, offloaded', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const guest = await runInGuest(image, ['node', '/app/examples/batch-function/index.mjs', '--n', '48'], {
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
    });
    assert.equal(guest.exitCode, 0, guest.output);
    const fromGuest = jsonFromOutput<{ where: string; checksum: number; intact: boolean }>(guest.output);
    const onHost = spawnSync(process.execPath, [`${root}examples/batch-function/index.mjs`, '--n', '48'], {
      encoding: 'utf8',
      env: { ...process.env, VACCEL_RPC_ADDRESS: '' },
    });
    assert.equal(onHost.status, 0, onHost.stderr);
    const here = JSON.parse(onHost.stdout) as typeof fromGuest;
    assert.deepEqual([fromGuest.where, fromGuest.intact], ['agent', true]);
    assert.equal(fromGuest.checksum, here.checksum);
  });
});
