/**
 * Issue 21, walls: limits that hold under pipelining, ids that tell a tenant nothing about
 * others, statuses that follow the error, messages without host paths, sockets private from
 * the moment they exist.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { Agent } from '@vaccel/agent';
import {
  Args,
  createStderrLogger,
  LogLevel,
  OpType,
  packClassify,
  ResourceType,
  Vaccel,
  VaccelError,
} from '@vaccel/core';
import { nativeAvailable } from '@vaccel/memory';
import { DEFAULT_MODEL_DIR } from '@vaccel/plugin-onnx';
import { connect, detailErrno, errorFromRpc, toWireArg } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { Client, TtrpcError } from '@vaccel/ttrpc';
import { tempDir } from './helpers.js';
import { guest, logEvent, startReadyAgent } from './walls-helpers.js';

const cat = new Uint8Array(readFileSync(new URL('../../../examples/images/cat.jpg', import.meta.url)));

async function stubOn(address: string, token?: string) {
  const client = new Client(
    await connect(address),
    token ? { metadata: { authorization: `Bearer ${token}` } } : {},
  );
  return { client, stub: serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC) };
}

suite('walls: limits and ids', () => {
  test('1,100 pipelined CreateSession calls with --max-sessions 1024: exactly 1024 succeed', async () => {
    const address = `unix://${join(tempDir(), 's.sock')}`;
    const agent = await startReadyAgent(['-a', address, '--max-sessions', '1024']);
    const { client, stub } = await stubOn(address);
    try {
      // All written in one tick: the agent reads them back to back.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 1100 }, () => stub.createSession({ flags: 0 })),
      );
      const ok = outcomes.filter((o) => o.status === 'fulfilled');
      assert.equal(ok.length, 1024);
      for (const o of outcomes) {
        if (o.status === 'fulfilled') continue;
        assert.ok(o.reason instanceof TtrpcError, String(o.reason));
        assert.equal(o.reason.code, 8); // RESOURCE_EXHAUSTED
        assert.equal(detailErrno(o.reason.details), 87); // EUSERS
      }
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  test('resource ids are per connection: the same bytes get ids that reveal nothing', async () => {
    const address = `unix://${join(tempDir(), 'r.sock')}`;
    const agent = await startReadyAgent(['-a', address]);
    const a = await stubOn(address);
    const b = await stubOn(address);
    try {
      const secret = randomBytes(4096);
      const upload = async (peer: typeof a, data: Uint8Array) => {
        const { sessionId } = await peer.stub.createSession({ flags: 0 });
        const { resourceId } = await peer.stub.registerResource({
          sessionId,
          resourceType: ResourceType.Data,
          blobs: [{ name: 'x', data, size: data.byteLength }],
        });
        return { sessionId, resourceId };
      };
      // Tenant A holds something else first, then the secret.
      await upload(a, randomBytes(100));
      const held = await upload(a, secret);
      // Tenant B uploads the same secret: its id is the one any first upload on a connection gets.
      const probe = await upload(b, secret);
      assert.equal(probe.resourceId, 1n);
      assert.notEqual(probe.resourceId, held.resourceId);
      // A's id means nothing on B's connection.
      await assert.rejects(
        b.stub.syncResource({ resourceId: held.resourceId }),
        (e: unknown) => e instanceof TtrpcError && e.code === 5,
      );
      // Each sees its own bytes under its own id.
      const mine = await b.stub.syncResource({ resourceId: probe.resourceId });
      assert.deepEqual(Buffer.from(mine.blobs[0]!.data), secret);
    } finally {
      await a.client.close();
      await b.client.close();
      await agent.stop();
    }
  });

  test('ops name resources by the connection’s ids (model resources through the public API)', async () => {
    const address = `unix://${join(tempDir(), 'm.sock')}`;
    const agent = await startReadyAgent(['-a', address]);
    const one = await guest(address);
    const two = await guest(address);
    try {
      // Guest one holds another resource first, so the two connections' ids of the model differ.
      const other = await one.vaccel.createResource({
        type: ResourceType.Data,
        blobs: [{ name: 'x', data: randomBytes(64) }],
      });
      one.session.registerResource(other);
      await one.session.imageClassify(cat, { model: other }).catch(() => {}); // uploaded (not a model)
      const results = [];
      for (const { vaccel, session } of [one, two]) {
        const model = await vaccel.createResource({ type: ResourceType.Model, paths: DEFAULT_MODEL_DIR });
        session.registerResource(model);
        results.push(await session.imageClassify(cat, { model, topK: 1 }));
      }
      assert.deepEqual(results[0], results[1]);
    } finally {
      await one.vaccel.close();
      await two.vaccel.close();
      await agent.stop();
    }
  });
});

suite('walls: errors', () => {
  test('statuses follow the error class, keep the vAccel detail, map back on the guest, name no host path', async () => {
    const dir = tempDir();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'open-sesame\n');
    const missingModel = join(dir, 'models', 'not-there');
    const address = `unix://${join(dir, 'e.sock')}`;
    const agent = await startReadyAgent(['-a', address, '--token-file', tokenFile, '--log-level', 'debug'], {
      VACCEL_ONNX_MODEL: missingModel,
    });
    const { client, stub } = await stubOn(address, 'open-sesame');
    const stranger = await stubOn(address, 'guess');
    try {
      const { sessionId } = await stub.createSession({ flags: 0 });
      const genop = (read: { buf: Uint8Array; size: number; argType: number }[], session = sessionId) =>
        stub.genop({ sessionId: session, readArgs: read, writeArgs: [] });
      const noop = { buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 };
      const cases: [string, () => Promise<unknown>, number, string][] = [
        ['bad id', () => genop([noop], 0n), 3, 'EINVAL'],
        [
          'arg size mismatch',
          () => genop([{ buf: new Uint8Array([0, 0]), size: 1, argType: 9 }]),
          3,
          'EINVAL',
        ],
        ['unknown session', () => genop([noop], 999n), 5, 'ENOENT'],
        [
          'host paths',
          () => stub.registerResource({ sessionId, resourceType: 2, paths: ['/etc/passwd'] }),
          7,
          'EPERM',
        ],
        ['wrong token', () => stranger.stub.createSession({ flags: 0 }), 7, 'EACCES'],
        ['Torch', () => stub.torchModelLoad({ sessionId, modelId: 1n }), 12, 'ENOTSUP'],
        [
          'missing default model',
          () => {
            const { read, write } = packClassify(cat, 5, 0);
            return stub.genop({
              sessionId,
              readArgs: [toWireArg(Args.uint8(OpType.ImageClassifyTopK)), ...read.map(toWireArg)],
              writeArgs: write.map(toWireArg),
            });
          },
          5,
          'ENOENT',
        ],
      ];
      for (const [what, call, code, vaccelCode] of cases) {
        const error = await call().then(
          () => assert.fail(`${what}: succeeded`),
          (e: unknown) => e,
        );
        assert.ok(error instanceof TtrpcError, `${what}: ${String(error)}`);
        assert.equal(error.code, code, `${what}: status ${error.code} ${error.message}`);
        const mapped = errorFromRpc(error, 'agent');
        assert.ok(mapped instanceof VaccelError, what);
        assert.equal(mapped.code, vaccelCode, `${what}: ${mapped.message}`);
        assert.equal(detailErrno(error.details), mapped.errno, what);
        assert.ok(
          !error.message.includes(dir) && !error.message.includes(process.cwd()),
          `${what}: ${error.message}`,
        );
      }
      // The host's log keeps the path the guest was not told.
      const logged = await logEvent(
        agent,
        (l) => l.msg === 'call failed' && String(l.err).includes(missingModel),
      );
      assert.equal(logged.code, 'NOT_FOUND');
    } finally {
      await client.close();
      await stranger.client.close();
      await agent.stop();
    }
  });
});

suite('walls: sockets', () => {
  test('the agent socket and its .shm handover socket are 0600 from the moment they exist', async () => {
    const dir = tempDir();
    const path = join(dir, 'p.sock');
    const modes = new Map<string, number>();
    // Look at each socket file right after bind (inside listen), before anything could chmod it.
    const listen = NetServer.prototype.listen;
    NetServer.prototype.listen = function (this: NetServer, ...args: unknown[]) {
      const result = (listen as (...a: unknown[]) => NetServer).apply(this, args);
      const target = args[0] as { path?: string } | string;
      const file = typeof target === 'string' ? target : target?.path;
      if (file) modes.set(file, statSync(file).mode & 0o777);
      return result;
    } as typeof listen;
    // A permissive umask, as a service manager may leave: the files must not inherit it.
    const umask = process.umask(0o002);
    // The handover socket is made by the addon (bind and listen in one native call, which cannot
    // be watched from here): its mode is the umask's at that call, so record the umasks set.
    const setUmask = process.umask;
    const masks: number[] = [];
    process.umask = ((mask?: number) => {
      if (mask !== undefined) masks.push(mask);
      return mask === undefined ? setUmask() : setUmask(mask);
    }) as typeof process.umask;
    const vaccel = await Vaccel.open({ plugins: ['noop'] });
    const agent = new Agent({ vaccel, logger: createStderrLogger(LogLevel.Error) });
    try {
      await agent.listen(`unix://${path}`);
      assert.equal(modes.get(path), 0o600);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      if (nativeAvailable()) {
        // 0177 around each socket's creation, the old umask back after each.
        assert.deepEqual(masks, [0o177, 0o002, 0o177, 0o002]);
        assert.equal(statSync(`${path}.shm`).mode & 0o777, 0o600);
      } else assert.deepEqual(masks, [0o177, 0o002]);
      assert.equal(setUmask(), 0o002, 'the umask is back to what it was');
    } finally {
      process.umask = setUmask;
      process.umask(umask);
      NetServer.prototype.listen = listen;
      agent.close();
      await vaccel.close();
    }
  });
});
