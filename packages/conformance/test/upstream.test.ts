/**
 * Our client against a Go agent that behaves on the wire like upstream vAccel 0.8's
 * vaccel-rpc-agent (go-peer upstream): TCP with Nagle on, every reply's header and body in two
 * writes, only upstream's ops (3–6 answered with fixed text), and, in its 0.7 mode, vAccel 0.7.1's
 * service string. Speed is measured by `vaccel-bench upstream`, not here: these tests check the
 * mechanisms, synchronised on replies and log lines.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent } from '@vaccel/agent';
import {
  buildGoPeer,
  type GoPeerBuild,
  type GoUpstreamAgent,
  runGoPeer,
  startGoUpstream,
} from '@vaccel/conformance';
import { Args, isVaccelErrorCode, type Logger, OpType, Vaccel, VaccelError } from '@vaccel/core';
import type { Native } from '@vaccel/memory';
import {
  connect,
  decodeGenopResponse,
  encodeGenopRequest,
  quickAckOnRead,
  tcpDescriptor,
  toWireArg,
} from '@vaccel/protocol';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';

const run = promisify(execFile);
const image = (name: string) => fileURLToPath(new URL(`../../../examples/images/${name}`, import.meta.url));
const DUMMY_TAG = 'This is a dummy classification tag!';
const DUMMY_IMGNAME = 'This is a dummy out_imgname!';

let peer: GoPeerBuild;
let agent: GoUpstreamAgent | undefined;
/** The addon, or why it is not there. */
let addon: Native | string;
before(async () => {
  peer = await buildGoPeer();
  if (peer.skip) console.log(`# the Go reference peer is not available: ${peer.skip}`);
  else agent = await startGoUpstream(peer.binary!);
  try {
    const memory = await import('@vaccel/memory');
    addon = memory.nativeAvailable() ? memory.native() : 'the @vaccel/memory addon is not built here';
  } catch {
    addon = 'the optional @vaccel/memory package is not installed';
  }
});
after(() => agent?.stop());

/**
 * A logger keeping its lines. What the plugin logs while connecting and on the first read is
 * logged before the op that connected settles, so tests assert on it right after the op.
 */
type RecordingLogger = Logger & { lines: string[] };
function recordingLogger(): RecordingLogger {
  const lines: string[] = [];
  const line = (message?: string): void => {
    lines.push(message ?? '');
  };
  const logger: RecordingLogger = {
    lines,
    child: () => logger,
    error: (_f, m) => line(m),
    warn: (_f, m) => line(m),
    info: (_f, m) => line(m),
    debug: (_f, m) => line(m),
  };
  return logger;
}

/** A 1×1 SGEMM genop in upstream's layout: its reply has a body, so header and body go apart. */
function sgemmRequest(): Uint8Array {
  const one = new Float32Array([3]);
  const read = [
    Args.uint8(OpType.BlasSgemm),
    Args.int64(1),
    Args.int64(1),
    Args.int64(1),
    Args.float32(1),
    Args.float32Array(one),
    Args.int64(1),
    Args.float32Array(one),
    Args.int64(1),
    Args.float32(0),
    Args.int64(1),
  ];
  const request = encodeGenopRequest({
    sessionId: 1n,
    readArgs: read.map(toWireArg),
    writeArgs: [toWireArg(Args.float32Array(new Float32Array(1)))],
  });
  return Buffer.concat(request);
}

suite('our client and a Go agent that writes like upstream (TCP, Nagle on, header and body apart)', () => {
  test('calls work through the RPC plugin: sessions, SGEMM', async (t) => {
    if (!agent) return t.skip((peer.skip as string) ?? 'no peer');
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: agent.address })] });
    await using session = await vaccel.createSession();
    const c = await session.sgemm({
      m: 2,
      n: 2,
      k: 2,
      a: new Float32Array([1, 2, 3, 4]),
      b: new Float32Array([5, 6, 7, 8]),
    });
    assert.deepEqual([...c], [19, 22, 43, 50]);
  });

  test('the client re-arms TCP_QUICKACK after every read of the connection', async (t) => {
    if (!agent) return t.skip((peer.skip as string) ?? 'no peer');
    if (typeof addon === 'string') return t.skip(addon);
    const lib = addon;
    const armedOn = new Set<number>();
    let rearms = 0;
    // The real addon, counting the calls that armed quick-ack (and whether the kernel took it).
    const counting: Native = {
      ...lib,
      tcpQuickAck(fd, arm) {
        const on = lib.tcpQuickAck(fd, arm);
        if (arm !== false && on) {
          rearms++;
          armedOn.add(fd);
        }
        return on;
      },
    };
    let reads = 0;
    let socketFd: number | undefined;
    const hook = quickAckOnRead(counting);
    const client = new Client(await connect(agent.address), {
      onRead: (stream) => {
        reads++;
        socketFd = tcpDescriptor(stream);
        hook(stream);
      },
    });
    try {
      const request = sgemmRequest();
      for (let i = 1; i <= 20; i++) {
        const reply = decodeGenopResponse(
          await client.call('vaccel.sync.agent.AgentService', 'Genop', request),
        );
        assert.deepEqual([...new Float32Array(reply.writeArgs[0]!.buf.slice().buffer)], [9]);
        // Each reply took at least one read (its header and body come apart), each read a re-arm.
        assert.ok(reads >= i, `${reads} reads after ${i} replies`);
        assert.equal(rearms, reads, 'every read re-armed quick-ack');
      }
      assert.ok(socketFd !== undefined, 'the hook found the TCP descriptor');
      assert.deepEqual([...armedOn], [socketFd], 'quick-ack was armed on the connection itself');
    } finally {
      await client.close();
    }
  });

  test('the RPC plugin arms quick-ack on tcp:// agents, and not when told not to', async (t) => {
    if (!agent) return t.skip((peer.skip as string) ?? 'no peer');
    if (typeof addon === 'string') return t.skip(addon);
    for (const quickAck of [true, false]) {
      const logger = recordingLogger();
      {
        await using vaccel = await Vaccel.open({
          plugins: [remotePlugin({ address: agent.address, quickAck })],
          logger,
        });
        await using session = await vaccel.createSession();
        await session.sgemm({ m: 1, n: 1, k: 1, a: new Float32Array([2]), b: new Float32Array([2]) });
      }
      assert.equal(
        logger.lines.some((l) => l.includes('TCP_QUICKACK')),
        quickAck,
        `quickAck: ${quickAck}: ${logger.lines.join(' | ')}`,
      );
    }
  });

  test('typed image ops fall back to upstream ops 3–6, and say so', async (t) => {
    if (!agent) return t.skip((peer.skip as string) ?? 'no peer');
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: agent.address })] });
    await using session = await vaccel.createSession();
    const photo = new Uint8Array(Buffer.from('not decoded by the agent'));
    const classes = await session.imageClassify(photo, { topK: 3 });
    assert.equal(classes.length, 1);
    assert.equal(classes[0]!.upstream, true);
    assert.equal(classes[0]!.label, DUMMY_TAG);
    assert.equal(classes[0]!.index, -1);
    assert.ok(Number.isNaN(classes[0]!.score));

    const detected = await session.imageDetect(photo, { annotate: true });
    assert.deepEqual(detected.upstream, { op: 'image_detect', text: DUMMY_IMGNAME });
    assert.deepEqual(detected.result, []);
    assert.equal(detected.annotated, undefined);
    const pose = await session.imagePose(photo);
    assert.deepEqual(pose.upstream, { op: 'image_pose', text: DUMMY_IMGNAME });
    assert.deepEqual(pose.result.keypoints, []);
    const segment = await session.imageSegment(photo);
    assert.deepEqual(segment.upstream, { op: 'image_segment', text: DUMMY_IMGNAME });
    assert.equal(segment.result.mask.byteLength, 0);

    // Our extension ops that have no upstream counterpart are still refused, naming the op.
    await assert.rejects(
      session.encrypt({
        algorithm: 'aes-128-cbc',
        key: new Uint8Array(16),
        iv: new Uint8Array(16),
        data: new Uint8Array(16),
      }),
      (error) => isVaccelErrorCode(error, 'ENOTSUP'),
    );
  });

  test('the vaccel command prints what the upstream agent answered', async (t) => {
    if (!agent) return t.skip((peer.skip as string) ?? 'no peer');
    const bin = fileURLToPath(new URL('../../cli/src/bin.ts', import.meta.url));
    const vaccel = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', '--conditions=@vaccel/source', bin, ...args], {
        env: { ...process.env, VACCEL_RPC_ADDRESS: agent!.address, VACCEL_PLUGINS: '' },
      });
    const classify = await vaccel('classify', image('cat.jpg'));
    assert.match(classify.stdout, new RegExp(`upstream agent, image_classify: ${DUMMY_TAG}`));
    for (const task of ['detect', 'pose', 'segment']) {
      const { stdout } = await vaccel(task, image('person.jpg'));
      assert.match(stdout, new RegExp(`upstream agent, image_${task}: ${DUMMY_IMGNAME}`));
    }
    const { stdout } = await vaccel('detect', image('dog.jpg'), '--json');
    assert.deepEqual(JSON.parse(stdout).upstream, { op: 'image_detect', text: DUMMY_IMGNAME });
  });
});

suite('a vAccel 0.7 agent (another op numbering) is refused unless VACCEL_VERSION_IGNORE', () => {
  let old: GoUpstreamAgent | undefined;
  before(async () => {
    if (!peer.skip) old = await startGoUpstream(peer.binary!, '0.7');
  });
  after(() => old?.stop());

  test('refused with EPROTO naming the version and the override', async (t) => {
    if (!old) return t.skip((peer.skip as string) ?? 'no peer');
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: old.address, env: {} })] });
    await using session = await vaccel.createSession();
    await assert.rejects(session.noop(), (error) => {
      assert.ok(error instanceof VaccelError && error.code === 'EPROTO', String(error));
      assert.match(error.message, /vAccel 0\.7/);
      assert.match(error.message, /vaccel\.AgentService/);
      assert.match(error.message, /VACCEL_VERSION_IGNORE=1/);
      return true;
    });
  });

  test('used with VACCEL_VERSION_IGNORE=1, with a warning', async (t) => {
    if (!old) return t.skip((peer.skip as string) ?? 'no peer');
    const logger = recordingLogger();
    await using vaccel = await Vaccel.open({
      plugins: [remotePlugin({ address: old.address, env: { VACCEL_VERSION_IGNORE: '1' } })],
      logger,
    });
    await using session = await vaccel.createSession();
    const c = await session.sgemm({ m: 1, n: 1, k: 1, a: new Float32Array([2]), b: new Float32Array([5]) });
    assert.deepEqual([...c], [10]);
    assert.ok(
      logger.lines.some((l) => l.includes('using it anyway (VACCEL_VERSION_IGNORE)')),
      logger.lines.join(' | '),
    );
  });
});

/** A free loopback TCP port. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

suite('our agent and a Go client that writes like upstream (TCP, Nagle on, header and body apart)', () => {
  test('calls work, and the agent re-arms TCP_QUICKACK on the connection (not when told not to)', async (t) => {
    if (peer.skip) return t.skip(peer.skip);
    if (typeof addon === 'string') return t.skip(addon);
    for (const quickAck of [true, false]) {
      const logger = recordingLogger();
      await using vaccel = await Vaccel.open({ plugins: ['sgemm-js'], logger });
      await using agent = new Agent({ vaccel, logger, quickAck });
      const port = await freePort();
      await agent.listen(`tcp://127.0.0.1:${port}`);
      const [line] = (await runGoPeer(peer.binary!, ['upstream-client', `127.0.0.1:${port}`, '5'])) as {
        samples: number[];
      }[];
      assert.equal(line?.samples.length, 5, 'five SGEMMs answered (the client checks each result)');
      // Logged on the first read of the connection, before the first reply was written.
      assert.equal(
        logger.lines.some((l) => l.includes('TCP_QUICKACK re-armed after each read')),
        quickAck,
        `quickAck: ${quickAck}: ${logger.lines.join(' | ')}`,
      );
    }
  });
});
