import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  GuestMemory,
  isVaccelErrorWithCode,
  readChain,
  SplitQueue,
} from './helpers.js';

const BASE = 0x10000;
const SIZE = 0x4000;
const USER = 0x5000_0000;

/** One region of guest memory over a plain buffer, and a descriptor table at its start. */
function setup(entries = 16) {
  const bytes = new Uint8Array(SIZE);
  const memory = GuestMemory.fromBuffers([
    { guestAddress: BASE, size: SIZE, userAddress: USER, mmapOffset: 0, bytes },
  ]);
  const table = new DataView(bytes.buffer, 0, entries * 16);
  const write = (view: DataView, index: number, addr: number, len: number, flags: number, next: number) => {
    view.setBigUint64(index * 16, BigInt(addr), true);
    view.setUint32(index * 16 + 8, len, true);
    view.setUint16(index * 16 + 12, flags, true);
    view.setUint16(index * 16 + 14, next, true);
  };
  return { bytes, memory, table, write };
}

const rejectsWith = (fn: () => unknown, code: string) =>
  assert.throws(fn, (error: unknown) => isVaccelErrorWithCode(error, code));

describe('readChain', () => {
  it('returns readable then writable buffers as views of guest memory', () => {
    const { bytes, memory, table, write } = setup();
    bytes.set([1, 2, 3], 0x1000);
    write(table, 3, BASE + 0x1000, 3, DESC_F_NEXT, 7);
    write(table, 7, BASE + 0x2000, 8, DESC_F_WRITE, 0);
    const chain = readChain(memory, table, 16, 3);
    assert.equal(chain.head, 3);
    assert.deepEqual([...chain.readable[0]!], [1, 2, 3]);
    assert.deepEqual([chain.readableBytes, chain.writableBytes], [3, 8]);
    chain.writable[0]!.fill(9);
    assert.equal(bytes[0x2000 + 7], 9, 'writes land in guest memory');
  });

  it('follows an indirect table', () => {
    const { bytes, memory, table, write } = setup();
    const indirect = new DataView(bytes.buffer, 0x800, 48);
    write(indirect, 0, BASE + 0x1000, 72, DESC_F_NEXT, 2);
    write(indirect, 2, BASE + 0x1100, 16, DESC_F_NEXT, 1);
    write(indirect, 1, BASE + 0x2000, 17, DESC_F_WRITE, 0);
    write(table, 0, BASE + 0x800, 48, DESC_F_INDIRECT, 0);
    const chain = readChain(memory, table, 16, 0);
    assert.deepEqual([chain.readable.length, chain.readableBytes, chain.writableBytes], [2, 88, 17]);
  });

  it('refuses malformed chains', () => {
    const { memory, table, write } = setup();
    const cases: [string, () => void, string][] = [
      ['loop', () => write(table, 0, BASE, 16, DESC_F_NEXT, 0), 'EBADMSG'],
      ['next past the table', () => write(table, 0, BASE, 16, DESC_F_NEXT, 16), 'EBADMSG'],
      [
        'readable after writable',
        () => {
          write(table, 0, BASE, 16, DESC_F_WRITE | DESC_F_NEXT, 1);
          write(table, 1, BASE, 16, 0, 0);
        },
        'EBADMSG',
      ],
      [
        'indirect with NEXT',
        () => write(table, 0, BASE + 0x800, 32, DESC_F_INDIRECT | DESC_F_NEXT, 1),
        'EBADMSG',
      ],
      ['indirect of 20 bytes', () => write(table, 0, BASE + 0x800, 20, DESC_F_INDIRECT, 0), 'EBADMSG'],
      ['buffer outside memory', () => write(table, 0, BASE + SIZE, 1, 0, 0), 'EFAULT'],
      ['buffer running off the end', () => write(table, 0, BASE + SIZE - 8, 16, 0, 0), 'EFAULT'],
      ['address past 2^53', () => write(table, 0, 2 ** 60, 16, 0, 0), 'EFAULT'],
      ['indirect table outside memory', () => write(table, 0, 0x10, 32, DESC_F_INDIRECT, 0), 'EFAULT'],
    ];
    for (const [what, arrange, code] of cases) {
      table.setBigUint64(0, 0n);
      arrange();
      rejectsWith(() => readChain(memory, table, 16, 0), code);
      for (let i = 0; i < 2; i++) write(table, i, 0, 0, 0, 0);
      assert.ok(what);
    }
    rejectsWith(() => readChain(memory, table, 16, 16), 'EBADMSG');
    // Nested indirect tables.
    const inner = new DataView(memory.guest(BASE + 0x800, 32).buffer, 0x800, 32);
    write(inner, 0, BASE + 0x900, 16, DESC_F_INDIRECT, 0);
    write(table, 0, BASE + 0x800, 32, DESC_F_INDIRECT, 0);
    rejectsWith(() => readChain(memory, table, 16, 0), 'EBADMSG');
  });

  it('never reads outside guest memory and always ends, whatever the descriptors say (fuzzed)', () => {
    const descriptor = fc.record({
      addr: fc.oneof(
        fc.integer({ min: BASE - 64, max: BASE + SIZE + 64 }),
        fc.constantFrom(0, 2 ** 53, 2 ** 64 - 1),
        fc.integer({ min: 0, max: 2 ** 40 }),
      ),
      len: fc.oneof(fc.integer({ min: 0, max: 512 }), fc.constantFrom(2 ** 32 - 1, SIZE, 16, 48)),
      flags: fc.integer({ min: 0, max: 7 }),
      next: fc.integer({ min: 0, max: 20 }),
    });
    fc.assert(
      fc.property(
        fc.array(descriptor, { minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 17 }),
        (descriptors, head) => {
          const { bytes, memory, table, write } = setup();
          // The table sits at BASE, so indirect descriptors pointing there parse it as an indirect table.
          for (const [i, d] of descriptors.entries()) write(table, i, d.addr, d.len, d.flags, d.next);
          try {
            const chain = readChain(memory, table, 16, head);
            for (const view of [...chain.readable, ...chain.writable]) {
              assert.equal(view.buffer, bytes.buffer);
              assert.ok(view.byteOffset >= 0 && view.byteOffset + view.byteLength <= SIZE);
            }
            assert.ok(chain.readable.length + chain.writable.length <= 32);
          } catch (error) {
            assert.ok(
              isVaccelErrorWithCode(error, 'EBADMSG') || isVaccelErrorWithCode(error, 'EFAULT'),
              `unexpected ${error}`,
            );
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('SplitQueue', () => {
  const layout = { descriptors: USER, available: USER + 0x1000, used: USER + 0x2000 };

  it('pops what the driver made available and pushes used entries', () => {
    const { bytes, memory } = setup();
    const queue = new SplitQueue(memory, 8, layout, 0);
    const avail = new DataView(bytes.buffer, 0x1000);
    const used = new DataView(bytes.buffer, 0x2000);
    assert.equal(queue.pop(), undefined);
    avail.setUint16(4, 5, true);
    avail.setUint16(6, 2, true);
    avail.setUint16(2, 2, true);
    assert.deepEqual([queue.pop(), queue.pop(), queue.pop()], [5, 2, undefined]);
    queue.push(5, 17);
    assert.deepEqual([used.getUint16(2, true), used.getUint32(4, true), used.getUint32(8, true)], [1, 5, 17]);
    queue.requestKick();
    assert.equal(used.getUint16(4 + 8 * 8, true), 2, 'avail_event tells the driver where we are');
    assert.equal(queue.lastAvailable, 2);
  });

  it('wraps its 16-bit indices and resumes from a base', () => {
    const { bytes, memory } = setup();
    const avail = new DataView(bytes.buffer, 0x1000);
    avail.setUint16(4 + 2 * (0xffff % 4), 3, true);
    avail.setUint16(2, 0, true);
    const queue = new SplitQueue(memory, 4, layout, 0xffff);
    assert.equal(queue.pop(), 3);
    assert.equal(queue.lastAvailable, 0);
  });

  it('refuses bad sizes, misaligned or unmapped rings, and indices that jump past the ring', () => {
    const { bytes, memory } = setup();
    assert.throws(() => new SplitQueue(memory, 6, layout, 0), { code: 'EINVAL' });
    assert.throws(() => new SplitQueue(memory, 8, { ...layout, used: USER + 0x2002 }, 0), { code: 'EINVAL' });
    assert.throws(() => new SplitQueue(memory, 8, { ...layout, descriptors: USER + SIZE }, 0), {
      code: 'EFAULT',
    });
    assert.throws(() => new SplitQueue(memory, 1024, layout, 0), { code: 'EFAULT' });
    const queue = new SplitQueue(memory, 8, layout, 0);
    new DataView(bytes.buffer, 0x1000).setUint16(2, 9, true);
    assert.throws(() => queue.pop(), { code: 'EBADMSG' });
  });
});
