import assert from 'node:assert/strict';
import { after, before, suite, test } from 'node:test';
import { type CipherAlgorithm, decryptStream, encryptStream, type Session, Vaccel } from '@vaccel/core';
import fc from 'fast-check';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// NIST SP 800-38A, appendix F: the same four plaintext blocks for every CBC and CTR vector.
const P38A = hex(`6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
  30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710`);
const K128 = '2b7e151628aed2a6abf7158809cf4f3c';
const K192 = '8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b';
const K256 = '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4';
const IV_CBC = '000102030405060708090a0b0c0d0e0f';
const IV_CTR = 'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff';
const sp80038a: [string, CipherAlgorithm, string, string, string][] = [
  [
    'F.2.1',
    'aes-128-cbc',
    K128,
    IV_CBC,
    '7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7',
  ],
  [
    'F.2.3',
    'aes-192-cbc',
    K192,
    IV_CBC,
    '4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd',
  ],
  [
    'F.2.5',
    'aes-256-cbc',
    K256,
    IV_CBC,
    'f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b',
  ],
  [
    'F.5.1',
    'aes-128-ctr',
    K128,
    IV_CTR,
    '874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee',
  ],
  [
    'F.5.3',
    'aes-192-ctr',
    K192,
    IV_CTR,
    '1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e941e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050',
  ],
  [
    'F.5.5',
    'aes-256-ctr',
    K256,
    IV_CTR,
    '601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6',
  ],
];

// GCM test vectors (SP 800-38D / the GCM specification's test cases 1–4 and 16).
const P_GCM =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39';
const AAD = 'feedfacedeadbeeffeedfacedeadbeefabaddad2';
const gcm: [string, CipherAlgorithm, string, string, string, string, string, string][] = [
  [
    'case 1',
    'aes-128-gcm',
    '00000000000000000000000000000000',
    '000000000000000000000000',
    '',
    '',
    '',
    '58e2fccefa7e3061367f1d57a4e7455a',
  ],
  [
    'case 2',
    'aes-128-gcm',
    '00000000000000000000000000000000',
    '000000000000000000000000',
    '00000000000000000000000000000000',
    '',
    '0388dace60b6a392f328c2b971b2fe78',
    'ab6e47d42cec13bdf53a67b21257bddf',
  ],
  [
    'case 3',
    'aes-128-gcm',
    'feffe9928665731c6d6a8f9467308308',
    'cafebabefacedbaddecaf888',
    `${P_GCM}1aafd255`,
    '',
    '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985',
    '4d5c2af327cd64a62cf35abd2ba6fab4',
  ],
  [
    'case 4',
    'aes-128-gcm',
    'feffe9928665731c6d6a8f9467308308',
    'cafebabefacedbaddecaf888',
    P_GCM,
    AAD,
    '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091',
    '5bc94fbc3221a5db94fae95ae7121a47',
  ],
  [
    'case 16',
    'aes-256-gcm',
    'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    'cafebabefacedbaddecaf888',
    P_GCM,
    AAD,
    '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    '76fc6ece0f4e1768cddf8853bb2d551b',
  ],
];

suite('crypto plugin', () => {
  let vaccel: Vaccel;
  let session: Session;
  before(async () => {
    vaccel = await Vaccel.open({ plugins: ['crypto'] });
    session = await vaccel.createSession();
  });
  after(() => vaccel.close());

  for (const [name, algorithm, key, iv, expected] of sp80038a) {
    test(`SP 800-38A ${name} ${algorithm} encrypt and decrypt`, async () => {
      const params = { algorithm, key: hex(key), iv: hex(iv), padding: false };
      const { data, tag } = await session.encrypt({ ...params, data: P38A });
      assert.equal(toHex(data), expected);
      assert.equal(tag, undefined);
      assert.equal(toHex(await session.decrypt({ ...params, data: hex(expected) })), toHex(P38A));
    });
  }

  for (const [name, algorithm, key, iv, plain, aad, cipher, tag] of gcm) {
    test(`GCM ${name} ${algorithm} encrypt, decrypt and tag check`, async () => {
      const params = { algorithm, key: hex(key), iv: hex(iv), aad: hex(aad) };
      const out = await session.encrypt({ ...params, data: hex(plain) });
      assert.equal(toHex(out.data), cipher);
      assert.equal(toHex(out.tag!), tag);
      assert.equal(toHex(await session.decrypt({ ...params, data: hex(cipher), tag: hex(tag) })), plain);
    });
  }

  test('CBC with PKCS#7 padding adds a block and strips it again', async () => {
    const params = { algorithm: 'aes-128-cbc' as const, key: hex(K128), iv: hex(IV_CBC) };
    const { data } = await session.encrypt({ ...params, data: P38A });
    assert.equal(data.byteLength, 80);
    assert.equal(toHex(data.subarray(0, 64)), sp80038a[0]![4]);
    assert.deepEqual(await session.decrypt({ ...params, data }), P38A);
    const empty = await session.encrypt({ ...params, data: new Uint8Array(0) });
    assert.equal(empty.data.byteLength, 16);
    assert.equal((await session.decrypt({ ...params, data: empty.data })).byteLength, 0);
  });

  const rejects = async (work: Promise<unknown>, code: string, pattern: RegExp): Promise<void> => {
    await assert.rejects(work, (error: Error & { code?: string }) => {
      assert.equal(error.name, 'VaccelError');
      assert.equal(error.code, code, error.message);
      assert.match(error.message, pattern);
      return true;
    });
  };
  const base = { algorithm: 'aes-128-cbc' as const, key: hex(K128), iv: hex(IV_CBC), data: P38A };

  test('wrong key length is EINVAL naming the sizes', async () => {
    await rejects(session.encrypt({ ...base, key: new Uint8Array(15) }), 'EINVAL', /16-byte key, got 15/);
    await rejects(session.decrypt({ ...base, algorithm: 'aes-256-cbc' }), 'EINVAL', /32-byte key, got 16/);
  });

  test('wrong IV length is EINVAL', async () => {
    await rejects(session.encrypt({ ...base, iv: new Uint8Array(12) }), 'EINVAL', /16-byte IV, got 12/);
    await rejects(
      session.encrypt({ ...base, algorithm: 'aes-128-gcm', iv: new Uint8Array(0) }),
      'EINVAL',
      /non-empty IV/,
    );
  });

  test('unsupported algorithm and misuse are EINVAL', async () => {
    await rejects(
      session.encrypt({ ...base, algorithm: 'aes-128-ecb' as CipherAlgorithm }),
      'EINVAL',
      /unsupported algorithm aes-128-ecb/,
    );
    await rejects(
      session.encrypt({ ...base, data: P38A.subarray(0, 20), padding: false }),
      'EINVAL',
      /whole 16-byte blocks/,
    );
    await rejects(session.encrypt({ ...base, aad: new Uint8Array(4) }), 'EINVAL', /only GCM/);
    await rejects(
      session.encrypt({ ...base, algorithm: 'aes-128-gcm', tagLength: 3 }),
      'EINVAL',
      /tag of 4, 8 or 12–16/,
    );
    await rejects(
      session.decrypt({ ...base, algorithm: 'aes-128-gcm', iv: hex('cafebabefacedbaddecaf888') }),
      'EINVAL',
      /tag/,
    );
  });

  test('bad padding is EBADMSG', async () => {
    // Last plaintext byte 0x00 is never valid PKCS#7 padding.
    const block = new Uint8Array(16);
    const { data } = await session.encrypt({ ...base, data: block, padding: false });
    await rejects(session.decrypt({ ...base, data }), 'EBADMSG', /bad padding/);
    await rejects(session.decrypt({ ...base, data: data.subarray(0, 15) }), 'EBADMSG', /bad padding/);
  });

  test('bad GCM tag, aad or ciphertext is EBADMSG', async () => {
    const [, algorithm, key, iv, , aad, cipher, tag] = gcm[3]!;
    const params = { algorithm, key: hex(key), iv: hex(iv), aad: hex(aad), data: hex(cipher), tag: hex(tag) };
    const badTag = hex(tag);
    badTag[0]! ^= 1;
    await rejects(session.decrypt({ ...params, tag: badTag }), 'EBADMSG', /authentication failed/);
    await rejects(session.decrypt({ ...params, aad: new Uint8Array(0) }), 'EBADMSG', /authentication failed/);
    const badData = hex(cipher);
    badData[5]! ^= 0x80;
    await rejects(session.decrypt({ ...params, data: badData }), 'EBADMSG', /authentication failed/);
    // The plugin keeps working after failures.
    assert.equal(toHex(await session.decrypt(params)), P_GCM);
  });

  test('streaming in small chunks gives exactly the one-shot bytes (property)', async () => {
    const algorithms: CipherAlgorithm[] = [
      'aes-128-cbc',
      'aes-256-cbc',
      'aes-128-ctr',
      'aes-192-ctr',
      'aes-128-gcm',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...algorithms),
        fc.uint8Array({ minLength: 0, maxLength: 700 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (algorithm, data, blocks, pieces, padding) => {
          const bits = Number(algorithm.slice(4, 7));
          const gcmMode = algorithm.endsWith('gcm');
          const cbc = algorithm.endsWith('cbc');
          const usePadding = cbc ? padding : undefined;
          const plain = cbc && !padding ? data.subarray(0, data.byteLength - (data.byteLength % 16)) : data;
          const params = {
            algorithm,
            key: new Uint8Array(bits / 8).fill(7),
            iv: new Uint8Array(gcmMode ? 12 : 16).fill(0xfe),
            padding: usePadding,
          };
          const split = async function* (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
            for (let at = 0, i = 0; at < bytes.byteLength; i++) {
              const size = pieces[i % pieces.length]!;
              yield bytes.subarray(at, at + size);
              at += size;
            }
          };
          const oneShot = await session.encrypt({ ...params, data: plain });
          const streamed: Uint8Array[] = [];
          for await (const part of encryptStream(session, params, split(plain), { chunkSize: 16 * blocks }))
            streamed.push(part);
          const expected = Buffer.concat([oneShot.data, oneShot.tag ?? new Uint8Array(0)]);
          assert.equal(toHex(Buffer.concat(streamed)), toHex(expected));
          const back: Uint8Array[] = [];
          const decryptParams = { ...params, tag: oneShot.tag };
          for await (const part of decryptStream(session, decryptParams, split(oneShot.data), {
            chunkSize: 16 * blocks,
          }))
            back.push(part);
          assert.equal(toHex(Buffer.concat(back)), toHex(plain));
        },
      ),
      { numRuns: 150 },
    );
  });

  test('CTR streaming carries the counter across 2^64 blocks (128-bit increment)', async () => {
    const params = {
      algorithm: 'aes-128-ctr' as const,
      key: hex(K128),
      iv: hex('00000000000000ffffffffffffffffff'),
    };
    const data = new Uint8Array(96).fill(3);
    const { data: oneShot } = await session.encrypt({ ...params, data });
    const parts: Uint8Array[] = [];
    async function* src(): AsyncGenerator<Uint8Array> {
      yield data;
    }
    for await (const part of encryptStream(session, params, src(), { chunkSize: 16 })) parts.push(part);
    assert.equal(toHex(Buffer.concat(parts)), toHex(oneShot));
  });
});
