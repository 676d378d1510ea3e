import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { hostPlugins } from '@vaccel/plugin-onnx';
import { buildGuest, type GuestImage } from '../src/build.js';
import { jsonFromOutput, runInGuest } from '../src/run.js';
import { GUEST_TIMEOUT_S, SUITE_TIMEOUT_MS, TEST_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

suite('a QEMU guest that only has virtio-vsock offloads over hybrid vsock', {
  skip: vmSkipReason(),
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  let image: GuestImage;
  before(async () => {
    image = await buildGuest(`${root}.vm`);
  });

  test('vaccel detect in the guest prints the host in-process result', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const guest = await runInGuest(image, ['vaccel', 'detect', '--json', '/examples/dog.jpg'], {
      onLine: () => {},
      timeoutSeconds: GUEST_TIMEOUT_S,
      transport: 'vsock',
    });
    assert.equal(guest.exitCode, 0, guest.output);
    const fromGuest = jsonFromOutput<{ result: unknown }>(guest.output);
    await using vaccel = await Vaccel.open({ plugins: hostPlugins() });
    await using session = await vaccel.createSession();
    const onHost = await session.imageDetect(readFileSync(`${root}examples/images/dog.jpg`));
    assert.deepEqual(fromGuest.result, onHost.result);
    // The photo went up and the detections came back through the vsock backend, to the agent's
    // hybrid-vsock socket (the guest has no virtio-serial device to use instead).
    const photoBytes = readFileSync(`${root}examples/images/dog.jpg`).byteLength;
    assert.ok(guest.vsock, 'the vsock backend reports what it carried');
    const overVsock = guest.agentBytes.byListener[guest.vsock.agentAddress];
    assert.ok(overVsock, `the agent counted bytes on ${guest.vsock.agentAddress}`);
    assert.ok(overVsock.received >= photoBytes, `agent received ${overVsock.received}`);
    // Every byte the agent saw came in on that socket.
    assert.equal(overVsock.received, guest.agentBytes.received);
    assert.equal(overVsock.sent, guest.agentBytes.sent);
    assert.ok(guest.vsock.bytesFromGuest >= guest.agentBytes.received, JSON.stringify(guest.vsock));
    assert.ok(guest.vsock.bytesToGuest >= guest.agentBytes.sent, JSON.stringify(guest.vsock));
    assert.ok(guest.vsock.connections >= 1);
    assert.equal(guest.vsock.badPackets, 0);
  });
});
