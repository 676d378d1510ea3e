import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Args, OpType, packCipher, Vaccel } from '@vaccel/core';
import { native, nativeAvailable } from '@vaccel/memory';
import { refWireArg, type SharedRef, toWireArg } from '@vaccel/protocol';
import {
  AGENT_SERVICE_SYNC,
  SharedMemoryService,
  SyncAgentService,
  serviceClient,
} from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { freePort, type RunningAgent, startAgent, tempDir } from './helpers.js';

const parity = fileURLToPath(new URL('./fixtures/shm-parity.ts', import.meta.url));
const REGION = 64 * 1024;

/** Runs the parity guest (a separate process) against `address`; returns what it printed. */
function runParity(
  address: string,
  env: Record<string, string> = {},
): { via: string; results: Record<string, boolean> } {
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--conditions=@vaccel/source', parity, address],
    {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    },
  );
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
}

/** A raw connection to the agent, speaking the extension by hand as a hostile guest could. */
async function rawGuest(address: string) {
  const socket = netConnect(address.replace('unix://', ''));
  await new Promise((resolve) => socket.once('connect', resolve));
  const client = new Client(socket);
  const agent = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
  const memory = serviceClient(client, SharedMemoryService);
  const { sessionId } = await agent.createSession({ flags: 0 });
  return {
    client,
    memory,
    /** Closes the connection, also when a test fails half way (else its socket holds the run open). */
    [Symbol.dispose]: () => client.close(),
    /** Makes a memfd region (sealed unless told), hands it over and attaches it. */
    async attach(bytes: Uint8Array, options: { seal?: boolean; nonce?: Uint8Array } = {}) {
      const lib = native();
      const fd = lib.memfd('test-region', bytes.byteLength, options.seal ?? true);
      const view = new Uint8Array(lib.mmap(fd, bytes.byteLength, 0));
      view.set(bytes);
      const offer = await memory.offer({});
      assert.equal(offer.nonce.byteLength, 32);
      const nonce = options.nonce ?? offer.nonce;
      const handover = lib.connect(offer.handoverPath);
      lib.sendmsg(handover, nonce, [fd]);
      lib.close(handover);
      lib.close(fd);
      try {
        const { regionId } = await memory.attach({ nonce: offer.nonce });
        return { regionId, view };
      } finally {
        lib.munmap(view.buffer as ArrayBuffer);
      }
    },
    /** AES-128-CBC encrypt of the bytes `ref` names, through a raw genop. */
    async encrypt(ref: SharedRef, key: Uint8Array, iv: Uint8Array): Promise<Uint8Array> {
      const { read, write } = packCipher('encrypt', {
        algorithm: 'aes-128-cbc',
        key,
        iv,
        data: new Uint8Array(1),
      });
      const readArgs = [Args.uint8(OpType.AesEncrypt), ...read].map(toWireArg);
      readArgs[4] = refWireArg(read[3]!, ref);
      const reply = await agent.genop({ sessionId, readArgs, writeArgs: write.map(toWireArg) });
      return reply.writeArgs[0]!.buf;
    },
  };
}

const agentMaps = (agent: RunningAgent): string[] =>
  readFileSync(`/proc/${agent.process.pid}/maps`, 'utf8')
    .split('\n')
    .filter((line) => line.includes('memfd:test-region') || line.includes('memfd:vaccel-region'));

/**
 * Waits until the agent maps no test region. A connection's regions are unmapped as it is freed,
 * just before the agent logs 'guest disconnected': the check runs again at each log line.
 */
const unmapped = (agent: RunningAgent, what: string): Promise<void> =>
  agent.until(() => agentMaps(agent).length === 0, what);

const cbc = (key: Uint8Array, iv: Uint8Array, data: Uint8Array): string => {
  const cipher = createCipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]).toString('hex');
};

suite('shared memory between a guest process and the agent', {
  skip: !nativeAvailable() && 'the @vaccel/memory addon is not built',
}, () => {
  const dir = tempDir();
  const address = `unix://${dir}/agent.sock`;
  let agent: RunningAgent;
  before(async () => {
    agent = await startAgent(['-a', address]);
  });
  after(async () => {
    await agent.stop();
  });

  test('sgemm, AES and a model run on views in a region equal in-process results, by reference', () => {
    const { via, results } = runParity(address);
    assert.equal(via, 'memfd');
    assert.deepEqual(results, {
      sgemm: true,
      sgemm256: true,
      encrypt: true,
      decrypt: true,
      gcm: true,
      modelRun: true,
      classify: true,
    });
  });

  test('without the addon in the guest the same ops give the same results in-band', () => {
    const { via, results } = runParity(address, { VACCEL_NO_NATIVE: '1' });
    assert.equal(via, 'process');
    assert.ok(Object.values(results).every(Boolean), JSON.stringify(results));
  });

  test('without the addon in the agent, guests fall back to in-band and say why', async () => {
    const other = `unix://${dir}/plain.sock`;
    const plain = await startAgent(['-a', other], { VACCEL_NO_NATIVE: '1' });
    try {
      assert.ok(plain.logs.some((l) => String(l.msg).includes('shared memory is off')));
      const { via, results } = runParity(other);
      assert.equal(via, 'process');
      assert.ok(Object.values(results).every(Boolean), JSON.stringify(results));
    } finally {
      await plain.stop();
    }
  });

  test('every reference is bounds-checked: outside, across the end or past 2^53 is EINVAL (fuzzed)', async () => {
    using guest = await rawGuest(address);
    const content = randomBytes(REGION);
    const { regionId } = await guest.attach(content);
    const key = randomBytes(16);
    const iv = randomBytes(16);
    const huge = 2 ** 64 - 2048; // the largest uint64 a double holds exactly
    const offsets = fc.oneof(
      fc.integer({ min: 0, max: REGION }),
      fc.integer({ min: REGION - 64, max: REGION + 64 }),
      fc.constantFrom(REGION, REGION + 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, huge),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(regionId, regionId, regionId, 0, regionId + 1, 999),
        offsets,
        offsets,
        async (id, offset, length) => {
          const ref = { regionId: id, offset, length };
          const inside = id === regionId && offset + length <= REGION;
          try {
            const out = await guest.encrypt(ref, key, iv);
            assert.ok(inside, `accepted ${JSON.stringify(ref)}`);
            assert.equal(
              Buffer.from(out).toString('hex'),
              cbc(key, iv, content.subarray(offset, offset + length)),
            );
          } catch (error) {
            if (error instanceof assert.AssertionError) throw error;
            assert.ok(!inside, `refused ${JSON.stringify(ref)}: ${error}`);
            assert.match(String(error), /outside shared region|no shared region|a shared reference/);
          }
        },
      ),
      { numRuns: 300 },
    );
    // The agent is fine and the region still works.
    const whole = await guest.encrypt({ regionId, offset: 0, length: REGION }, key, iv);
    assert.equal(Buffer.from(whole).toString('hex'), cbc(key, iv, content));
  });

  test("a connection cannot reach another connection's region, nonce or descriptor", async () => {
    using a = await rawGuest(address);
    using b = await rawGuest(address);
    const key = randomBytes(16);
    const iv = randomBytes(16);
    const aBytes = randomBytes(4096);
    const { regionId: aId } = await a.attach(aBytes);
    // B names A's region id before it has one of its own.
    await assert.rejects(b.encrypt({ regionId: aId, offset: 0, length: 16 }, key, iv), /no shared region/);
    // B's own region 1 is B's memory, whatever A's region 1 holds.
    const bBytes = randomBytes(4096);
    const { regionId: bId } = await b.attach(bBytes);
    assert.equal(bId, aId, 'ids are per connection');
    assert.equal(
      Buffer.from(await b.encrypt({ regionId: bId, offset: 0, length: 4096 }, key, iv)).toString('hex'),
      cbc(key, iv, bBytes),
    );
    // A nonce offered to A is no use on B.
    const offer = await a.memory.offer({});
    await assert.rejects(b.memory.attach({ nonce: offer.nonce }), /no such offer/);
    // A memfd that could still shrink under the agent's mapping is refused.
    await assert.rejects(a.attach(randomBytes(4096), { seal: false }), /sealed/);
  });

  test('a descriptor handed over by another process is refused (EPERM)', async () => {
    using guest = await rawGuest(address);
    const offer = await guest.memory.offer({});
    // Another process (same user) hands a sealed memfd over with this connection's nonce.
    const thief = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { native } from '@vaccel/memory';
         const lib = native(); const fd = lib.memfd('x', 4096, true);
         const s = lib.connect(process.argv[1]); lib.sendmsg(s, Buffer.from(process.argv[2], 'hex'), [fd]);`,
        offer.handoverPath,
        Buffer.from(offer.nonce).toString('hex'),
      ],
      { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: 'inherit' },
    );
    await new Promise((resolve) => thief.once('exit', resolve));
    await assert.rejects(guest.memory.attach({ nonce: offer.nonce }), /another process/);
  });

  test('regions are unmapped from the agent when detached and when their connection closes', async () => {
    await unmapped(agent, 'earlier connections let go of their regions');
    using guest = await rawGuest(address);
    const first = await guest.attach(randomBytes(8192));
    await guest.attach(randomBytes(8192));
    assert.equal(agentMaps(agent).length, 2, 'both regions are mapped in the agent');
    await guest.memory.detach({ regionId: first.regionId });
    assert.equal(agentMaps(agent).length, 1, 'a detached region is unmapped');
    await assert.rejects(
      guest.encrypt({ regionId: first.regionId, offset: 0, length: 16 }, randomBytes(16), randomBytes(16)),
      /no shared region/,
    );
    guest.client.close();
    await unmapped(agent, 'a closed connection unmaps its regions');
  });

  test('plain arrays of 64 KiB and more go through a staging region, not the socket', async () => {
    const port = await freePort();
    const staged = `unix://${dir}/staged.sock`;
    const counted = await startAgent(['-a', staged, '--metrics', `127.0.0.1:${port}`]);
    const received = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^vaccel_agent_received_bytes_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
    };
    const n = 256; // A, B and C of 256 KiB each
    const a = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: n * n }, (_, i) => Math.cos(i));
    await using local = await Vaccel.open({ plugins: ['noop', 'sgemm-js'] });
    const want = await (await local.createSession()).sgemm({ m: n, n, k: n, a, b });
    try {
      for (const [stagingBytes, most, least] of [
        [64 << 20, 16 << 10, 0],
        [0, Number.POSITIVE_INFINITY, 3 * 4 * n * n],
      ] as const) {
        await using remote = await Vaccel.open({
          plugins: [remotePlugin({ address: staged, stagingBytes })],
        });
        const session = await remote.createSession();
        for (let i = 0; i < 3; i++) await session.sgemm({ m: n, n, k: n, a, b }); // the region is made meanwhile
        const before = await received();
        for (let i = 0; i < 5; i++) {
          const c = await session.sgemm({ m: n, n, k: n, a, b });
          for (let j = 0; j < c.length; j++)
            assert.ok(Math.abs(c[j]! - want[j]!) <= 1e-3 * (1 + Math.abs(want[j]!)));
        }
        const perCall = ((await received()) - before) / 5;
        assert.ok(perCall <= most && perCall >= least, `staging ${stagingBytes}: ${perCall} bytes per call`);
      }
    } finally {
      await counted.stop();
    }
  });
});
