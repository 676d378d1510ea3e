import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { encodeHeader, type Frame, FrameDecoder } from '@vaccel/ttrpc';
import fc from 'fast-check';

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
