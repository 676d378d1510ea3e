/**
 * Conformance with the reference ttRPC, both ways: containerd/ttrpc's Go client (go-peer) drives
 * our server and our vAccel agent; our client (and our RPC plugin) drive the Go server.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, suite, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from '@vaccel/agent';
import {
  buildGoPeer,
  type GoPeerBuild,
  PEER_SERVICE,
  type PeerCheck,
  peerMethods,
  runGoPeer,
  startGoPeer,
} from '@vaccel/conformance';
import { createStderrLogger, LogLevel, Vaccel } from '@vaccel/core';
import { execPlugin } from '@vaccel/core/plugins';
import { hostPlugins } from '@vaccel/plugin-onnx';
import { connect, errorFromRpc } from '@vaccel/protocol';
import { remotePlugin } from '@vaccel/remote';
import { Client, Code, Server, TtrpcError } from '@vaccel/ttrpc';

let peer: GoPeerBuild;
before(async () => {
  peer = await buildGoPeer();
  if (peer.skip) console.log(`# the Go reference peer is not available: ${peer.skip}`);
});

const dir = mkdtempSync(join(tmpdir(), 'vaccel-conformance-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const encoder = new TextEncoder();
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Runs a go-peer mode and turns each of its checks into a subtest. */
async function goChecks(t: TestContext, args: string[], expected: number): Promise<void> {
  const checks = (await runGoPeer(peer.binary!, args)) as PeerCheck[];
  assert.ok(checks.length >= expected, `go-peer ran ${checks.length} checks, expected ${expected}`);
  for (const check of checks) await t.test(check.name, () => assert.ok(check.ok, check.detail));
}

suite('the Go reference client drives our ttRPC server', () => {
  test('conformance.Peer: unary, deadlines, metadata, statuses, 1,000 concurrent calls, limits, raw envelopes', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    const server = new Server({ maxFrame: 64 << 20 });
    server.register(PEER_SERVICE, peerMethods());
    const path = join(dir, 'ours.sock');
    const listener = createServer();
    server.listen(listener);
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    try {
      await goChecks(t, ['drive', path], 25);
      assert.equal(server.pendingDeadlines, 0, 'no deadline outlives its call');
    } finally {
      server.close();
    }
  });

  test('the vAccel agent service: CreateSession, Genop (upstream SGEMM layout) under a deadline, DestroySession', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    await using vaccel = await Vaccel.open({
      plugins: ['noop', 'sgemm-js'],
      logger: createStderrLogger(LogLevel.Error),
    });
    await using agent = new Agent({ vaccel, logger: createStderrLogger(LogLevel.Error) });
    const path = join(dir, 'agent.sock');
    await agent.listen(`unix://${path}`);
    await goChecks(t, ['agent', path], 6);
  });

  test('every upstream op we serve, in upstream genop layouts: vision, minmax, FPGA ops, exec with a resource, GetProfiler', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    const module = join(dir, 'negate.mjs');
    const source =
      'export function negate(read, write) { write[0].buf.set(read[0].buf.map((b) => 255 - b)); }\nexport function secret() {}\n';
    writeFileSync(module, source);
    const digest = createHash('sha256').update(source).digest('hex');
    await using vaccel = await Vaccel.open({
      plugins: [
        ...hostPlugins({}).filter((p) => p !== 'exec'),
        execPlugin({ allowResources: [`${digest}#negate`] }),
      ],
      profiling: true,
      logger: createStderrLogger(LogLevel.Error),
    });
    await using agent = new Agent({ vaccel, logger: createStderrLogger(LogLevel.Error) });
    const path = join(dir, 'ops.sock');
    await agent.listen(`unix://${path}`);
    const photo = fileURLToPath(new URL('../../../examples/images/person.jpg', import.meta.url));
    await goChecks(t, ['ops', path, photo, module], 13);
  });
});

suite('our client drives the Go reference server', () => {
  let server: Awaited<ReturnType<typeof startGoPeer>> | undefined;
  let client: Client;
  before(async () => {
    if (peer.skip) return;
    server = await startGoPeer(peer.binary!);
    client = new Client(await connect(`unix://${server.path}`), { metadata: { 'x-client': 'vaccel-ts' } });
  });
  after(async () => {
    await client?.close();
    await server?.stop();
  });
  const call = (method: string, payload: string | Uint8Array, options = {}) =>
    client.call(
      PEER_SERVICE,
      method,
      typeof payload === 'string' ? encoder.encode(payload) : payload,
      options,
    );

  test('unary calls and metadata both ways', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    assert.equal(text(await call('Echo', 'hello from TypeScript')), 'hello from TypeScript');
    assert.equal((await call('Echo', new Uint8Array(0))).byteLength, 0);
    const seen = JSON.parse(
      text(await call('Metadata', '', { metadata: { 'x-call': 'ünï ☃', 'x-empty': '' } })),
    );
    assert.deepEqual(seen, { 'x-client': ['vaccel-ts'], 'x-call': ['ünï ☃'], 'x-empty': [''] });
  });

  test('deadlines: sent as timeout_nano, expiring ones give DEADLINE_EXCEEDED and the connection goes on', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    assert.equal(text(await call('Deadline', '')), 'none');
    // What the Go handler has left is the deadline sent, less at most the time the call took
    // here (measured, not assumed): it proves the unit (ns) and the rounding, however slow the
    // machine.
    const leftOf = async (timeoutMs: number, sentNs: number) => {
      const started = performance.now();
      const left = Number(text(await call('Deadline', '', { timeoutMs })));
      const tookNs = (performance.now() - started) * 1e6;
      assert.ok(left <= sentNs && left >= sentNs - tookNs, `the Go handler saw ${left} of ${sentNs} ns`);
    };
    await leftOf(30_000, 30e9);
    await leftOf(12_345.678, 12_345_678_000);
    // A deadline that cannot be met: the handler would sleep a day.
    await assert.rejects(
      call('Sleep', '86400000', { timeoutMs: 100 }),
      (error: unknown) => error instanceof TtrpcError && error.code === Code.DEADLINE_EXCEEDED,
    );
    assert.equal(text(await call('Echo', 'after the deadline')), 'after the deadline');
    assert.equal(client.pendingDeadlines, 0);
  });

  test('error statuses keep their code, message and details; unknown methods are UNIMPLEMENTED', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    await assert.rejects(call('Fail', '9:not now'), (error: unknown) => {
      assert.ok(error instanceof TtrpcError);
      assert.equal(error.code, Code.FAILED_PRECONDITION);
      assert.equal(error.message, 'not now');
      assert.equal(error.details.length, 1);
      assert.equal(error.details[0]!.typeUrl, 'type.googleapis.com/conformance.Detail');
      assert.equal(text(error.details[0]!.value), 'not now');
      return true;
    });
    await assert.rejects(
      call('Nope', ''),
      (error: unknown) => error instanceof TtrpcError && error.code === Code.UNIMPLEMENTED,
    );
  });

  test('1,000 concurrent calls on one connection', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => call('Echo', `call ${i}`, { timeoutMs: 60_000 })),
    );
    for (const [i, reply] of replies.entries()) assert.equal(text(reply), `call ${i}`);
    assert.equal(client.pendingDeadlines, 0);
  });

  test("the Go side's 4 MiB limit: big replies arrive whole, a bigger request is refused clearly", async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    const big = await call('Size', String((4 << 20) - 64));
    assert.equal(big.byteLength, (4 << 20) - 64);
    assert.ok(big.every((byte) => byte === 0x5a));
    const tooBig = new Uint8Array((4 << 20) + 1024).fill(1);
    const refused = await call('Echo', tooBig).then(
      () => assert.fail('the Go server took a frame over its limit'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof TtrpcError && refused.code === Code.RESOURCE_EXHAUSTED, String(refused));
    assert.match(refused.message, /exceed maximum message size of 4194304/);
    // What the RPC plugin tells its caller about it.
    const mapped = errorFromRpc(refused, 'agent blas_sgemm') as Error & { code: string };
    assert.equal(mapped.code, 'E2BIG');
    assert.match(mapped.message, /4 MiB/);
    assert.equal(text(await call('Echo', 'after the refusal')), 'after the refusal');
  });

  test('our RPC plugin runs SGEMM on the Go reference agent (upstream genop layout)', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    await using vaccel = await Vaccel.open({
      plugins: [remotePlugin({ address: `unix://${server!.path}` })],
    });
    await using session = await vaccel.createSession();
    const c = await session.sgemm({
      m: 2,
      n: 2,
      k: 3,
      a: new Float32Array([1, 2, 3, 4, 5, 6]),
      b: new Float32Array([7, 8, 9, 10, 11, 12]),
    });
    assert.deepEqual([...c], [58, 64, 139, 154]);
  });
});
