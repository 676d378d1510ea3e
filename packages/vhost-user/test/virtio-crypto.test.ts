import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type Chain,
  type CipherRequest,
  type CipherSession,
  decodeRequestHeader,
  encodeRequestHeader,
  gather,
  handleRequest,
  Opcode,
  opensslEngine,
  REQUEST_HEADER_SIZE,
  Status,
  SymOp,
  scatter,
} from './helpers.js';

/** Splits `data` into pieces at the given cut points. */
const split = (data: Uint8Array, cuts: number[]): Uint8Array[] => {
  const points = [...new Set(cuts.map((c) => c % (data.byteLength + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, data.byteLength]) {
    if (point > from) pieces.push(data.slice(from, point));
    from = Math.max(from, point);
  }
  return pieces;
};

const chainOf = (readable: Uint8Array[], writable: Uint8Array[]): Chain => ({
  head: 0,
  readable,
  writable,
  readableBytes: readable.reduce((n, b) => n + b.byteLength, 0),
  writableBytes: writable.reduce((n, b) => n + b.byteLength, 0),
});

const session = (key: Uint8Array, cipher = `aes-${key.byteLength * 8}-cbc`): CipherSession => ({
  id: 7n,
  cipher,
  key,
  direction: 1,
});

const engine = opensslEngine();

/** An AES-CBC encrypt request header for session 7, one block, with `overrides`. */
const aesHeader = (overrides: Partial<CipherRequest>) =>
  encodeRequestHeader({
    opcode: Opcode.CIPHER_ENCRYPT,
    algorithm: 3,
    sessionId: 7n,
    opType: SymOp.CIPHER,
    ivLength: 16,
    sourceLength: 16,
    destinationLength: 16,
    ...overrides,
  });

describe('request header', () => {
  it('encodes and decodes every field (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.record({
          opcode: fc.nat(0xffffffff),
          algorithm: fc.nat(0xffffffff),
          sessionId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          opType: fc.nat(0xffffffff),
          ivLength: fc.nat(0xffffffff),
          sourceLength: fc.nat(0xffffffff),
          destinationLength: fc.nat(0xffffffff),
        }),
        (request) => assert.deepEqual(decodeRequestHeader(encodeRequestHeader(request)), { ...request }),
      ),
    );
  });

  it('puts the fields where struct virtio_crypto_op_data_req has them', () => {
    const bytes = encodeRequestHeader({
      opcode: Opcode.CIPHER_DECRYPT,
      algorithm: 3,
      sessionId: 0x0102030405060708n,
      opType: SymOp.CIPHER,
      ivLength: 16,
      sourceLength: 0x20,
      destinationLength: 0x30,
    });
    assert.equal(bytes.byteLength, 72);
    const view = new DataView(bytes.buffer);
    assert.deepEqual(
      [
        view.getUint32(0, true),
        view.getUint32(4, true),
        view.getBigUint64(8, true),
        view.getUint32(24, true),
      ],
      [1, 3, 0x0102030405060708n, 16],
    );
    assert.deepEqual(
      [view.getUint32(28, true), view.getUint32(32, true), view.getUint32(64, true)],
      [0x20, 0x30, 1],
    );
  });
});

describe('gather and scatter', () => {
  it('see split buffers as one byte range (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.array(fc.nat(400)),
        fc.nat(300),
        fc.nat(300),
        (data, cuts, a, b) => {
          const pieces = split(data, cuts);
          const from = Math.min(a, b) % data.byteLength;
          const length = Math.min(Math.abs(a - b), data.byteLength - from);
          assert.deepEqual(gather(pieces, from, length), data.subarray(from, from + length));
          const out = pieces.map((p) => new Uint8Array(p.byteLength));
          scatter(out, from, data.subarray(from, from + length));
          const joined = Buffer.concat(out);
          assert.deepEqual(
            joined.subarray(from, from + length),
            Buffer.from(data.subarray(from, from + length)),
          );
        },
      ),
    );
  });

  it('refuse ranges past the buffers', () => {
    assert.throws(() => gather([new Uint8Array(4), new Uint8Array(4)], 6, 4), { code: 'EBADMSG' });
    assert.throws(() => scatter([new Uint8Array(4)], 2, new Uint8Array(4)), { code: 'EBADMSG' });
  });
});

describe('handleRequest', () => {
  it('ciphers exactly like OpenSSL however the driver splits the buffers (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.nat(2000), { maxLength: 6 }),
        fc.array(fc.nat(2000), { maxLength: 4 }),
        fc.boolean(),
        (keyBytes, blocks, readCuts, writeCuts, encrypt) => {
          const key = randomBytes(keyBytes);
          const iv = randomBytes(16);
          const data = randomBytes(16 * blocks);
          const header = encodeRequestHeader({
            opcode: encrypt ? Opcode.CIPHER_ENCRYPT : Opcode.CIPHER_DECRYPT,
            algorithm: 3,
            sessionId: 7n,
            opType: SymOp.CIPHER,
            ivLength: 16,
            sourceLength: data.byteLength,
            destinationLength: data.byteLength,
          });
          const readable = split(Buffer.concat([header, iv, data]), readCuts);
          const writable = split(new Uint8Array(data.byteLength + 1).fill(0xee), writeCuts);
          const outcome = handleRequest(
            chainOf(readable, writable),
            new Map([[7n, session(key)]]),
            engine.run,
          );
          assert.ok(!(outcome instanceof Promise));
          assert.equal(outcome.status, Status.OK);
          assert.equal(outcome.written, data.byteLength + 1);
          const out = Buffer.concat(writable);
          const cipher = (encrypt ? createCipheriv : createDecipheriv)(`aes-${keyBytes * 8}-cbc`, key, iv);
          cipher.setAutoPadding(false);
          assert.deepEqual(
            out.subarray(0, data.byteLength),
            Buffer.concat([cipher.update(data), cipher.final()]),
          );
          assert.equal(out[data.byteLength], Status.OK);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('answers every header the guest can send with a status in the last writable byte (fuzzed)', () => {
    const sessions = new Map([[7n, session(randomBytes(16))]]);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.array(fc.nat(300), { maxLength: 3 }),
        fc.integer({ min: 1, max: 300 }),
        fc.boolean(),
        (bytes, cuts, writableBytes, validSession) => {
          if (validSession && bytes.byteLength >= 16) new DataView(bytes.buffer).setBigUint64(8, 7n, true);
          const writable = [new Uint8Array(writableBytes).fill(0xee)];
          const outcome = handleRequest(chainOf(split(bytes, cuts), writable), sessions, engine.run);
          assert.ok(!(outcome instanceof Promise));
          assert.ok(Object.values(Status).includes(outcome.status));
          assert.equal(writable[0]![writableBytes - 1], outcome.status);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('maps each kind of bad request to its status', () => {
    const key = randomBytes(16);
    const sessions = new Map([
      [7n, session(key)],
      [8n, session(key, 'aes-128-ecb')],
    ]);
    const request = (overrides: Partial<CipherRequest>, tail = 32, out = 33) => {
      const header = aesHeader(overrides);
      const outcome = handleRequest(
        chainOf([header, new Uint8Array(tail)], [new Uint8Array(out)]),
        sessions,
        engine.run,
      );
      return (outcome as { status: number }).status;
    };
    assert.equal(request({}), Status.OK);
    assert.equal(request({ sessionId: 8n, ivLength: 0 }, 16, 17), Status.OK);
    assert.equal(request({ sessionId: 9n }), Status.INVSESS);
    assert.equal(request({ opcode: 0x300 }), Status.NOTSUPP);
    assert.equal(request({ opType: SymOp.ALGORITHM_CHAINING }), Status.NOTSUPP);
    assert.equal(request({ ivLength: 12 }), Status.BADMSG);
    assert.equal(request({ sourceLength: 17, destinationLength: 17 }), Status.BADMSG);
    assert.equal(request({ sourceLength: 64, destinationLength: 64 }), Status.BADMSG);
    assert.equal(request({ destinationLength: 8 }), Status.NOSPACE);
    assert.equal(request({}, 32, 10), Status.NOSPACE);
    assert.equal(
      (
        handleRequest(chainOf([new Uint8Array(REQUEST_HEADER_SIZE - 1)], []), sessions, engine.run) as {
          written: number;
        }
      ).written,
      0,
    );
  });

  it('reports a failing engine as ERR, synchronously or not', async () => {
    const sessions = new Map([[7n, session(randomBytes(16))]]);
    const chain = () => chainOf([aesHeader({}), new Uint8Array(32)], [new Uint8Array(17)]);
    const sync = handleRequest(chain(), sessions, () => {
      throw new Error('engine down');
    });
    assert.equal((sync as { status: number }).status, Status.ERR);
    const later = await handleRequest(chain(), sessions, async () => {
      throw new Error('agent down');
    });
    assert.equal(later.status, Status.ERR);
  });
});
