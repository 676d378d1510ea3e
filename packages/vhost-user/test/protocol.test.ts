import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeMessage,
  Flags,
  MessageReader,
  memoryTable,
  Request,
  readMemoryTable,
  readSessionReply,
  readSessionRequest,
  SESSION_PAYLOAD,
  sessionReply,
  sessionRequest,
  u64,
} from './helpers.js';

describe('MessageReader', () => {
  it('reassembles messages however the stream splits or joins them (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ request: fc.integer({ min: 1, max: 40 }), payload: fc.uint8Array({ maxLength: 64 }) }),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        fc.array(fc.nat(600), { maxLength: 6 }),
        (messages, cuts) => {
          const stream = Buffer.concat(
            messages.map((m) => encodeMessage(m.request, Flags.VERSION, m.payload)),
          );
          const points = [...new Set(cuts.map((c) => c % (stream.byteLength + 1))), stream.byteLength].sort(
            (a, b) => a - b,
          );
          const reader = new MessageReader();
          const got = [];
          let from = 0;
          for (const point of points) {
            got.push(...reader.push(stream.subarray(from, point), []));
            from = point;
          }
          assert.deepEqual(
            got.map((m) => [m.request, Buffer.from(m.payload)]),
            messages.map((m) => [m.request, Buffer.from(m.payload)]),
          );
        },
      ),
    );
  });

  it('gives descriptors only to the requests that carry them', () => {
    const reader = new MessageReader();
    const bytes = Buffer.concat([
      encodeMessage(Request.GET_FEATURES, Flags.VERSION),
      encodeMessage(Request.SET_VRING_KICK, Flags.VERSION, u64(0)),
    ]);
    const messages = reader.push(bytes, [42]);
    assert.deepEqual(
      messages.map((m) => m.fds),
      [[], [42]],
    );
    reader.push(encodeMessage(Request.GET_FEATURES, Flags.VERSION), [7]);
    assert.deepEqual(reader.takeStrayFds(), [7]);
  });

  it('keeps descriptors for a message whose bytes are still arriving', () => {
    const reader = new MessageReader();
    const kick = encodeMessage(Request.SET_VRING_KICK, Flags.VERSION, u64(0));
    assert.deepEqual(reader.push(kick.subarray(0, 5), [9]), []);
    assert.equal(reader.pendingBytes, 5);
    assert.deepEqual(
      reader.push(kick.subarray(5), []).map((m) => m.fds),
      [[9]],
    );
    assert.equal(reader.pendingBytes, 0);
  });

  it('refuses other versions and oversized payloads', () => {
    assert.throws(() => new MessageReader().push(encodeMessage(1, 0x2), []), { code: 'EPROTO' });
    const big = encodeMessage(1, Flags.VERSION);
    new DataView(big.buffer).setUint32(8, 1 << 20, true);
    assert.throws(() => new MessageReader().push(big, []), { code: 'EPROTO' });
  });
});

describe('payloads', () => {
  it('round-trips memory tables and refuses more than 8 regions', () => {
    const regions = [
      { guestAddress: 0, size: 0xa0000, userAddress: 0x7f0000000000, mmapOffset: 0 },
      { guestAddress: 0xc0000, size: 0x3ff40000, userAddress: 0x7f00000c0000, mmapOffset: 0xc0000 },
    ];
    assert.deepEqual(readMemoryTable(memoryTable(regions)), regions);
    const table = memoryTable(regions);
    new DataView(table.buffer).setUint32(0, 9, true);
    assert.throws(() => readMemoryTable(table), { code: 'EPROTO' });
  });

  it('reads crypto sessions in the QEMU 7.1+ layout and the older one', () => {
    const key = Uint8Array.from({ length: 24 }, (_, i) => i);
    const current = sessionRequest({ opcode: 2, cipherAlgorithm: 3, key, direction: 2, opType: 1 });
    assert.equal(current.byteLength, SESSION_PAYLOAD.current);
    assert.deepEqual(readSessionRequest(current), {
      opcode: 2,
      cipherAlgorithm: 3,
      key,
      direction: 2,
      opType: 1,
    });
    assert.equal(readSessionReply(sessionReply(current, 5n)), 5n);
    assert.equal(new DataView(sessionReply(current, -1n).buffer).getBigInt64(1064, true), -1n);
    // {i64 session_id; info (48); key[64]; auth_key[512]}
    const legacy = new Uint8Array(SESSION_PAYLOAD.legacy);
    const view = new DataView(legacy.buffer);
    view.setUint32(8, 3, true);
    view.setUint32(12, 16, true);
    view.setUint8(8 + 24, 1);
    view.setUint8(8 + 25, 1);
    legacy.set(key.subarray(0, 16), 56);
    assert.deepEqual(readSessionRequest(legacy), {
      opcode: 0,
      cipherAlgorithm: 3,
      key: key.subarray(0, 16),
      direction: 1,
      opType: 1,
    });
    assert.equal(readSessionReply(sessionReply(legacy, 9n)), 9n);
    assert.throws(() => readSessionRequest(new Uint8Array(100)), { code: 'EPROTO' });
    view.setUint32(12, 65, true);
    assert.throws(() => readSessionRequest(legacy), { code: 'EPROTO' });
  });
});
