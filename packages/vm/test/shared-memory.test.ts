import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { nativeAvailable } from '@vaccel/memory';
import { hostPlugins } from '@vaccel/plugin-onnx';
import { buildGuest, type GuestImage } from '../src/build.js';
import { jsonFromOutput, runInGuest } from '../src/run.js';
import { GUEST_TIMEOUT_S, SUITE_TIMEOUT_MS, TEST_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const skip = vmSkipReason() || (!nativeAvailable() && 'the @vaccel/memory addon is not built');

suite('a QEMU guest moves its data through ivshmem, not virtio-serial', {
  skip,
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  let image: GuestImage;
  before(async () => {
    image = await buildGuest(`${root}.vm`);
  });

  test('sgemm 512 and a classification through ivshmem equal the host; only calls cross virtio-serial', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const script = [
      'export VACCEL_LOG_LEVEL=info',
      'vaccel sgemm --n 512 --check',
      'vaccel classify --json /examples/cat.jpg',
    ].join(' && ');
    const guest = await runInGuest(image, ['sh', '-c', script], {
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
      sharedMemoryMiB: 64,
    });
    assert.equal(guest.exitCode, 0, guest.output);
    assert.match(
      guest.output,
      /data plane: arrays of 1024 bytes and more staged through shared memory \(ivshmem\)/,
    );
    assert.match(guest.output, /check: ok/);
    const fromGuest = jsonFromOutput<{ classes: unknown }>(
      guest.output.slice(guest.output.indexOf('check: ok')),
    );
    await using vaccel = await Vaccel.open({ plugins: hostPlugins() });
    await using session = await vaccel.createSession();
    const photo = readFileSync(`${root}examples/images/cat.jpg`);
    assert.deepEqual(fromGuest.classes, await session.imageClassify(photo));
    // In-band, the matrices alone are 12 MiB to the agent and 4 MiB back (3 runs + the check),
    // and the photo 24 KiB more: through ivshmem only the calls travel.
    const { received, sent } = guest.agentBytes;
    assert.ok(received < 8192, `the agent received ${received} bytes over virtio-serial`);
    assert.ok(sent < 8192, `the agent sent ${sent} bytes over virtio-serial`);
    assert.ok(photo.byteLength > 8192);
  });
});
