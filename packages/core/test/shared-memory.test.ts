import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVaccelErrorCode, type Plugin, PluginType, RangeAllocator, Vaccel } from '@vaccel/core';
import fc from 'fast-check';

describe('RangeAllocator', () => {
  it('hands out aligned ranges that never overlap, and merges freed ones back (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: 1, max: 5000 }).map((n) => ({ alloc: n })),
            fc.nat().map((i) => ({ free: i })),
          ),
          {
            maxLength: 200,
          },
        ),
        (steps) => {
          const size = 64 * 1024;
          const allocator = new RangeAllocator(size);
          const live: { offset: number; length: number }[] = [];
          for (const step of steps) {
            if ('alloc' in step) {
              const offset = allocator.alloc(step.alloc);
              if (offset === undefined) continue;
              assert.equal(offset % 64, 0);
              assert.ok(offset + step.alloc <= size);
              for (const other of live)
                assert.ok(
                  offset + step.alloc <= other.offset || other.offset + other.length <= offset,
                  'overlap',
                );
              live.push({ offset, length: step.alloc });
            } else if (live.length > 0) {
              const [gone] = live.splice(step.free % live.length, 1);
              assert.equal(allocator.free(gone!.offset), true);
            }
          }
          for (const { offset } of live) assert.equal(allocator.free(offset), true);
          assert.equal(allocator.used, 0);
          assert.equal(allocator.alloc(size), 0, 'everything freed merges back into one range');
        },
      ),
    );
  });

  it('refuses what it did not hand out', () => {
    const allocator = new RangeAllocator(4096);
    assert.equal(allocator.free(0), false);
    const at = allocator.alloc(10)!;
    assert.equal(allocator.free(at + 64), false);
    assert.equal(allocator.free(at), true);
    assert.equal(allocator.free(at), false, 'twice');
    assert.equal(allocator.alloc(8192), undefined);
  });
});

describe('Vaccel.sharedMemory', () => {
  it('gives process memory when no plugin shares, and views that ops use in place', async () => {
    await using vaccel = await Vaccel.open({ plugins: ['noop', 'sgemm-js', 'crypto'] });
    await using region = await vaccel.sharedMemory(1 << 20);
    assert.equal(region.via, 'process');
    assert.equal(region.byteLength, 1 << 20);
    const a = region.float32(4);
    const b = region.float32(4);
    const c = region.float32(4);
    a.set([1, 2, 3, 4]);
    b.set([5, 6, 7, 8]);
    await using session = await vaccel.createSession();
    assert.equal(await session.sgemm({ m: 2, n: 2, k: 2, a, b, c }), c);
    assert.deepEqual([...c], [19, 22, 43, 50]);
    const data = region.copyOf(new Uint8Array(32).fill(1));
    const output = region.uint8(48);
    const { data: sealed } = await session.encrypt({
      algorithm: 'aes-128-cbc',
      key: new Uint8Array(16),
      iv: new Uint8Array(16),
      data,
      output,
    });
    assert.equal(sealed.buffer, output.buffer);
    assert.equal(sealed.byteOffset, output.byteOffset);
    assert.equal(sealed.byteLength, 48);
    assert.ok(region.contains(sealed));
    assert.ok(!region.contains(new Float32Array(4)));
  });

  it('says clearly what is wrong: bad sizes, a full region, foreign views, a closed region', async () => {
    await using vaccel = await Vaccel.open({ plugins: ['noop'] });
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 41])
      await assert.rejects(vaccel.sharedMemory(bad), (e) => isVaccelErrorCode(e, 'EINVAL'));
    const region = await vaccel.sharedMemory(4096);
    const all = region.alloc(4096);
    assert.throws(
      () => region.uint8(1),
      (e) => isVaccelErrorCode(e, 'ENOMEM') && /no 1 free bytes/.test(String(e)),
    );
    assert.throws(
      () => region.float32(-1),
      (e) => isVaccelErrorCode(e, 'EINVAL'),
    );
    assert.throws(
      () => region.free(new Uint8Array(8)),
      (e) => isVaccelErrorCode(e, 'EINVAL'),
    );
    region.free(all);
    assert.equal(region.uint8(4096).byteLength, 4096);
    await region.close();
    await region.close(); // idempotent
    assert.equal(all.byteLength, 0, 'views of a closed region are empty');
    assert.throws(
      () => region.uint8(1),
      (e) => isVaccelErrorCode(e, 'EBADF'),
    );
  });

  it('asks the highest-priority plugin that shares memory, and closes regions with the runtime', async () => {
    const released: number[] = [];
    const sharing = (name: string, priority: number, share: boolean): Plugin => ({
      name,
      version: '1.0.0',
      types: PluginType.Cpu,
      priority,
      ops: {},
      async sharedMemory(byteLength) {
        if (!share) return undefined;
        const buffer = new ArrayBuffer(byteLength + 128);
        return {
          buffer,
          byteOffset: 128,
          byteLength,
          via: name,
          release: () => void released.push(byteLength),
        };
      },
    });
    const vaccel = await Vaccel.open({
      plugins: [sharing('low', 1, true), sharing('high', 10, false), sharing('mid', 5, true)],
    });
    const region = await vaccel.sharedMemory(1000);
    assert.equal(region.via, 'mid', 'high declined; mid beats low');
    const view = region.uint8(10);
    assert.equal(view.byteOffset, 128, 'views start at the memory the plugin gave');
    await vaccel.close();
    assert.deepEqual(released, [1000]);
    assert.ok(region.closed);
  });
});
