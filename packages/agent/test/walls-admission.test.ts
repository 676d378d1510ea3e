/**
 * Issue 21, walls: what a guest can make the agent allocate or compute is admitted before it
 * starts and stopped when the guest gives up.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { OpType, VaccelError } from '@vaccel/core';
import { connect, detailErrno, errorFromRpc } from '@vaccel/protocol';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  GenopRequestSchema,
  SyncAgentService,
  serviceClient,
} from '@vaccel/protocol/service';
import { Client, FrameFlag, FrameType, TtrpcError } from '@vaccel/ttrpc';
import sharp from 'sharp';
import { GATE_PLUGIN, gatedNoop, openGate } from './gate.js';
import { freePort, tempDir } from './helpers.js';
import { guest, metric, metricReaches, RawPeer, startReadyAgent } from './walls-helpers.js';

const MiB = 2 ** 20;

/** A TtrpcError's status code and the errno of its vAccel detail. */
function statusOf(error: unknown): { code: number; errno: number | undefined } {
  assert.ok(error instanceof TtrpcError, `a ttRPC status, got ${String(error)}`);
  return { code: error.code, errno: detailErrno(error.details) };
}

suite('walls: admission', () => {
  test('a pixel bomb is refused on its header (E2BIG), and other tenants are served meanwhile', async () => {
    // One colour compresses to almost nothing: 16000 × 16000 pixels (730 MiB decoded) in < 1 MiB.
    const bomb = await sharp({ create: { width: 16000, height: 16000, channels: 3, background: '#3070b0' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    assert.ok(bomb.byteLength < MiB);
    const path = join(tempDir(), 'bomb.sock');
    const port = await freePort();
    const agent = await startReadyAgent(['-a', `unix://${path}`, '--metrics', `127.0.0.1:${port}`]);
    const attacker = await guest(`unix://${path}`);
    const neighbour = await guest(`unix://${path}`);
    try {
      await neighbour.session.noop();
      const [attack, noop] = await Promise.allSettled([
        attacker.session.imageSegment(new Uint8Array(bomb), { annotate: true }),
        neighbour.session.noop(),
      ]);
      assert.equal(noop.status, 'fulfilled');
      assert.equal(attack.status, 'rejected');
      const error = (attack as PromiseRejectedResult).reason;
      assert.ok(error instanceof VaccelError && error.code === 'E2BIG', String(error));
      assert.match(error.message, /16000×16000 pixels .* over the limit of 40\.0 MP/);
      assert.equal(await metric(port, 'vaccel_agent_refusals_total{reason="image_pixels"}'), 1);
      // Upstream's ttRPC view of the same refusal: RESOURCE_EXHAUSTED with the E2BIG errno.
      const client = new Client(await connect(`unix://${path}`));
      const stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
      const { sessionId } = await stub.createSession({ flags: 0 });
      const refused = await stub
        .genop({
          sessionId,
          readArgs: [
            { buf: new Uint8Array([OpType.ImageSegment]), size: 1, argType: 9 },
            { buf: bomb, size: bomb.byteLength, argType: 9 },
          ],
          writeArgs: [{ buf: new Uint8Array(512), size: 512, argType: 9 }],
        })
        .catch((e: unknown) => e);
      assert.deepEqual(statusOf(refused), { code: 8, errno: 7 });
      await client.close();
      // A lower limit on the command line applies to ordinary photos too.
      const small = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } })
        .jpeg()
        .toBuffer();
      const strict = await startReadyAgent(['-a', `unix://${path}.2`, '--max-image-pixels', '50000']);
      const other = await guest(`unix://${path}.2`);
      await assert.rejects(other.session.imageClassify(new Uint8Array(small)), (e: unknown) => {
        return e instanceof VaccelError && e.code === 'E2BIG' && /over the limit of 0\.1 MP/.test(e.message);
      });
      await other.vaccel.close();
      await strict.stop();
    } finally {
      await attacker.vaccel.close();
      await neighbour.vaccel.close();
      await agent.stop();
    }
  });

  test('frames are admitted against --max-memory before they are read (ENOMEM while full, E2BIG never fits)', async () => {
    const path = join(tempDir(), 'mem.sock');
    const port = await freePort();
    const agent = await startReadyAgent([
      '-a',
      `unix://${path}`,
      '--max-memory',
      '3M',
      '--metrics',
      `127.0.0.1:${port}`,
    ]);
    const holder = await RawPeer.open(path);
    const client = new Client(await connect(`unix://${path}`));
    try {
      assert.equal(await metric(port, 'vaccel_agent_memory_budget_bytes'), 3 * MiB);
      const stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
      const { sessionId } = await stub.createSession({ flags: 0 });
      const blob = (bytes: number) => ({
        sessionId,
        resourceType: 1,
        blobs: [{ name: 'data', data: new Uint8Array(bytes).fill(7), size: bytes }],
      });
      // Another tenant's client stream holds 2 MiB: its one data frame stays admitted until the
      // stream ends and its handler settles.
      holder.request(1, AGENT_SERVICE_ASYNC, 'GenopStream', new Uint8Array(0), FrameFlag.RemoteOpen);
      const chunk = toBinary(
        GenopRequestSchema,
        create(GenopRequestSchema, {
          sessionId: 1n,
          readArgs: [{ buf: new Uint8Array(2 * MiB), size: 2 * MiB, argType: 9 }],
        }),
      );
      holder.frame(1, FrameType.Data, 0, chunk);
      await metricReaches(port, 'vaccel_agent_memory_in_flight_bytes', (v) => v >= 2 * MiB);
      // 2 MiB more does not fit now: refused before it is read, ENOMEM (RESOURCE_EXHAUSTED).
      const full = await stub.registerResource(blob(2 * MiB)).catch((e: unknown) => e);
      assert.deepEqual(statusOf(full), { code: 8, errno: 12 });
      const mapped = errorFromRpc(full, 'agent register_resource');
      assert.ok(mapped instanceof VaccelError && mapped.code === 'ENOMEM', String(mapped));
      assert.match(mapped.message, /short of memory/);
      // 4 MiB never fits a 3 MiB budget: E2BIG.
      assert.deepEqual(statusOf(await stub.registerResource(blob(4 * MiB)).catch((e: unknown) => e)), {
        code: 8,
        errno: 7,
      });
      assert.equal(await metric(port, 'vaccel_agent_refusals_total{reason="memory_frame"}'), 2);
      // The connection stayed in sync: small calls go on.
      await stub.genop({
        sessionId,
        readArgs: [{ buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 }],
      });
      // The stream ends, its handler settles (session 1 is not the holder's: NOT_FOUND), the bytes go back.
      holder.closeStream(1);
      await holder.response(1);
      await metricReaches(port, 'vaccel_agent_memory_in_flight_bytes', (v) => v === 0);
      const { resourceId } = await stub.registerResource(blob(2 * MiB));
      assert.ok(resourceId > 0n);
    } finally {
      holder.close();
      await client.close();
      await agent.stop();
    }
  });
});

suite('walls: cancellation stops the work', () => {
  // Whether SGEMM itself stops between row blocks is tested in-process, on the block events
  // (plugin-onnx sgemm-cancel, core sgemm): no guess of how long a multiplication takes. Here: a
  // deadline reaches the running op as an abort, the guest gets ETIMEDOUT, and the agent is free.
  test('a deadline aborts the op running in the agent; the guest gets ETIMEDOUT; the next call runs', {
    timeout: 60_000,
  }, async () => {
    await using gate = await openGate();
    const path = join(tempDir(), 'deadline.sock');
    const agent = await startReadyAgent(
      ['-a', `unix://${path}`, '--plugins', `noop:sgemm-js:${GATE_PLUGIN}`],
      gate.env,
    );
    // A gated op never finishes on its own: only the deadline can end it.
    const hasty = await guest(`unix://${path}`, { timeoutMs: 200 });
    const patient = await guest(`unix://${path}`);
    try {
      await hasty.session.noop(); // connected, with an agent session
      const call = gatedNoop(hasty.session, 'held');
      const held = await gate.entered('held');
      await held.hungUp; // the agent aborted the op: it stopped waiting at the gate
      const outcome = await call;
      assert.ok(
        !outcome.ok && outcome.error instanceof VaccelError && outcome.error.code === 'ETIMEDOUT',
        `ETIMEDOUT: ${String(!outcome.ok && outcome.error)}`,
      );
      const c = await patient.session.sgemm({
        m: 1,
        n: 1,
        k: 1,
        a: new Float32Array([3]),
        b: new Float32Array([4]),
      });
      assert.equal(c[0], 12);
    } finally {
      await hasty.vaccel.close();
      await patient.vaccel.close();
      await agent.stop();
    }
  });
});
