import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chooseAccelerator, probeAccelerator } from '../src/accel.js';
import { buildGuest, type GuestImage } from '../src/build.js';
import { GUEST_TIMEOUT_S, SUITE_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let dir: string;

/** A stand-in QEMU: a shell script that behaves as `body` says. */
function fakeQemu(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

suite('choosing KVM or TCG', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vaccel-accel-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('VACCEL_VM_ACCEL forces the accelerator, and a bad value is a clear error', async () => {
    for (const value of ['kvm', 'tcg'] as const)
      assert.deepEqual(await chooseAccelerator({ kernel: '/nonexistent', env: { VACCEL_VM_ACCEL: value } }), {
        accelerator: value,
        reason: `VACCEL_VM_ACCEL=${value}`,
      });
    await assert.rejects(
      chooseAccelerator({ kernel: '/nonexistent', env: { VACCEL_VM_ACCEL: 'hvf' } }),
      /VACCEL_VM_ACCEL must be auto, kvm or tcg, got hvf/,
    );
  });

  test('no KVM device: TCG, saying so', async () => {
    const choice = await chooseAccelerator({ kernel: '/nonexistent', env: {}, device: join(dir, 'no-kvm') });
    assert.equal(choice.accelerator, 'tcg');
    assert.match(choice.reason, /no-kvm is absent/);
  });

  test('a KVM device that opens but runs no guest: TCG, with what QEMU said; the answer is cached', async () => {
    const device = join(dir, 'kvm-broken');
    writeFileSync(device, '');
    // What a nested host with a partial KVM does: QEMU warns, then the guest never runs.
    const qemu = fakeQemu(
      'qemu-hangs',
      `echo "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]" >&2\nexec sleep 1000`,
    );
    const cacheFile = join(dir, 'cache.json');
    const choice = await chooseAccelerator({
      kernel: '/k',
      env: {},
      device,
      qemu,
      timeoutMs: 1000,
      cacheFile,
    });
    assert.equal(choice.accelerator, 'tcg');
    assert.match(choice.reason, /KVM does not run a guest here: a probe guest printed nothing within 1 s/);
    assert.match(choice.reason, /host doesn't support requested feature: CPUID.01H:ECX.pni/);
    assert.equal(JSON.parse(readFileSync(cacheFile, 'utf8')).accelerator, 'tcg');
    // Same process, same device and QEMU: no second probe.
    assert.equal(await chooseAccelerator({ kernel: '/k', env: {}, device, qemu, cacheFile }), choice);
  });

  test('a guest that prints under KVM: KVM', async () => {
    const device = join(dir, 'kvm-works');
    writeFileSync(device, '');
    const qemu = fakeQemu('qemu-prints', 'echo "Linux version 6.1.0"; exec sleep 1000');
    // A guard, not a speed check: the stand-in prints at once, however busy the machine is.
    const choice = await chooseAccelerator({
      kernel: '/k',
      env: {},
      device,
      qemu,
      cacheFile: false,
      timeoutMs: 600_000,
    });
    assert.deepEqual(choice, { accelerator: 'kvm', reason: 'a probe guest ran under KVM' });
  });

  test('QEMU that exits at once (no KVM module, bad options): not usable, with its message', async () => {
    const qemu = fakeQemu(
      'qemu-fails',
      'echo "Could not access KVM kernel module: No such device" >&2; exit 1',
    );
    const result = await probeAccelerator({ kernel: '/k', qemu });
    assert.equal(result.runs, false);
    assert.match(
      result.runs ? '' : result.why,
      /QEMU exited with 1 before the guest printed anything \(qemu: Could not access KVM kernel module/,
    );
  });
});

suite('the probe on the real QEMU and guest kernel', {
  skip: vmSkipReason(),
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  let image: GuestImage;
  before(async () => {
    image = await buildGuest(`${root}.vm`);
  });

  test('the guest kernel prints its first line under TCG: the probe sees a guest run', async () => {
    // No time limit that matters here: under TCG the kernel takes seconds on a busy machine.
    assert.deepEqual(
      await probeAccelerator({ kernel: image.kernel, accelerator: 'tcg', timeoutMs: GUEST_TIMEOUT_S * 1000 }),
      { runs: true },
    );
  });
});
