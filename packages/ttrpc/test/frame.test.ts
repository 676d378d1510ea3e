import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { encodeHeader, type Frame, FrameDecoder } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { BufferPool } from '../src/pool.js';
import { SlabReader } from '../src/reader.js';

const frameBytes = (streamId: number, type: number, flags: number, payload: Uint8Array): Uint8Array =>
  Buffer.concat([encodeHeader(payload.byteLength, streamId, type, flags), payload]);

suite('frame decoder', () => {
  test('header is 10 bytes, big-endian length and stream id', () => {
    assert.deepEqual([...encodeHeader(0x0102, 0x03040506, 1, 4)], [0, 0, 1, 2, 3, 4, 5, 6, 1, 4]);
  });

  test('any chunking of any frame sequence decodes to the same frames (property)', () => {
    const arbitraryFrame = fc.record({
      streamId: fc.nat({ max: 0xffffffff }),
      type: fc.integer({ min: 0, max: 255 }),
      flags: fc.integer({ min: 0, max: 255 }),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map((f) => frameBytes(f.streamId, f.type, f.flags, f.payload)));
          const seen: Frame[] = [];
          const decoder = new FrameDecoder(
            1024,
            (f) => seen.push({ ...f, payload: f.payload.slice() }),
            () => assert.fail('oversized'),
          );
          for (let at = 0, i = 0; at < wire.byteLength; i++) {
            const size = cuts[i % cuts.length]!;
            decoder.push(wire.subarray(at, at + size));
            at += size;
          }
          assert.equal(seen.length, frames.length);
          for (const [i, got] of seen.entries()) {
            assert.equal(got.streamId, frames[i]!.streamId);
            assert.equal(got.type, frames[i]!.type);
            assert.equal(got.flags, frames[i]!.flags);
            assert.deepEqual([...got.payload], [...frames[i]!.payload]);
          }
          assert.ok(decoder.idle);
        },
      ),
    );
  });

  test('an oversized frame is reported and skipped without allocating it; the next frame decodes', () => {
    const seen: number[] = [];
    const oversized: number[] = [];
    const decoder = new FrameDecoder(
      16,
      (f) => seen.push(f.streamId),
      (f) => oversized.push(f.length),
    );
    // Announces 4 GiB - 1: must not allocate, just skip what arrives.
    decoder.push(encodeHeader(0xffffffff, 1, 1, 0));
    assert.deepEqual(oversized, [0xffffffff]);
    assert.equal(decoder.idle, false);
    const decoder2 = new FrameDecoder(
      16,
      (f) => seen.push(f.streamId),
      (f) => oversized.push(f.length),
    );
    decoder2.push(
      Buffer.concat([frameBytes(3, 1, 0, new Uint8Array(40)), frameBytes(5, 1, 0, new Uint8Array(4))]),
    );
    assert.deepEqual(oversized, [0xffffffff, 40]);
    assert.deepEqual(seen, [5]);
  });
});

suite('slab reader (the socket read path)', () => {
  const arbitraryFrame = fc.record({
    streamId: fc.nat({ max: 0xffffffff }),
    type: fc.integer({ min: 0, max: 255 }),
    flags: fc.integer({ min: 0, max: 255 }),
    size: fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 16 * 1024, max: 150 * 1024 })),
    seed: fc.nat({ max: 255 }),
  });

  test('any read sizes decode any frames; views stay intact (a slab is never rewritten); big payloads are 8-byte aligned (property)', () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1 }),
        fc.boolean(),
        (specs, reads, pooled) => {
          const frames = specs.map((s) => ({
            ...s,
            payload: Uint8Array.from({ length: s.size }, (_, i) => (i * 31 + s.seed) & 0xff),
          }));
          const wire = Buffer.concat(frames.map((f) => frameBytes(f.streamId, f.type, f.flags, f.payload)));
          const seen: Frame[] = [];
          const reader = new SlabReader(
            1 << 20,
            (f) => seen.push(f),
            () => assert.fail('oversized'),
            pooled ? new BufferPool() : undefined,
          );
          for (let at = 0, i = 0; at < wire.byteLength; i++) {
            const target = reader.nextBuffer();
            assert.ok(target.byteLength > 0);
            const n = Math.min(target.byteLength, reads[i % reads.length]!, wire.byteLength - at);
            target.set(wire.subarray(at, at + n));
            reader.didRead(n);
            at += n;
          }
          assert.ok(reader.idle);
          assert.equal(seen.length, frames.length);
          for (const [i, got] of seen.entries()) {
            const want = frames[i]!;
            assert.deepEqual([got.streamId, got.type, got.flags], [want.streamId, want.type, want.flags]);
            assert.ok(Buffer.from(got.payload).equals(want.payload), `frame ${i} payload intact`);
            if (got.payload.byteLength >= 16 * 1024) assert.equal(got.payload.byteOffset % 8, 0);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('oversized frames are skipped in pieces; a recycled buffer is reused for the next big frame', () => {
    const seen: Frame[] = [];
    const oversized: number[] = [];
    const pool = new BufferPool();
    const reader = new SlabReader(
      64 * 1024,
      (f) => seen.push(f),
      (f) => oversized.push(f.length),
      pool,
    );
    const big = new Uint8Array(40_000).fill(9);
    const wire = Buffer.concat([
      frameBytes(1, 1, 0, new Uint8Array(100_000)),
      frameBytes(3, 1, 0, big),
      frameBytes(5, 1, 0, big),
    ]);
    const second = 10 + 100_000; // where the second frame starts
    const third = second + 10 + 40_000;
    reader.push(wire.subarray(0, 50));
    reader.push(wire.subarray(50, 70_000));
    reader.push(wire.subarray(70_000, second + 20));
    assert.deepEqual(oversized, [100_000]);
    assert.equal(seen.length, 0);
    reader.push(wire.subarray(second + 20, third));
    assert.equal(seen.length, 1);
    const buffer = seen[0]!.payload.buffer;
    seen[0]!.recycle?.();
    reader.push(wire.subarray(third, third + 15));
    reader.push(wire.subarray(third + 15));
    assert.equal(seen.length, 2);
    assert.ok(seen[1]!.payload.buffer === buffer, 'the recycled block came back');
    assert.ok(seen[1]!.payload.every((byte) => byte === 9));
  });
});
