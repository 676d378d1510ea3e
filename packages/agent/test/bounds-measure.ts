/**
 * Measures the agent's memory (VmRSS and VmHWM, /proc/<pid>/status) under the three attacks of
 * issue 22 part 2. Not a test: a tool for before/after numbers.
 *
 *   node --import tsx --conditions=@vaccel/source packages/agent/test/bounds-measure.ts \
 *     <repo root whose agent to run> unread|stream|idle|half [agent flags…]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  SyncAgentService,
} from '@vaccel/protocol/service';
import { encodeHeader, FrameDecoder, FrameFlag, FrameType, RequestSchema } from '@vaccel/ttrpc';
import { requestFrame } from './bounds-helpers.js';
import { tempDir } from './helpers.js';

const MiB = 1024 ** 2;
const [root, attack, ...flags] = process.argv.slice(2);
if (!root || !attack) throw new Error('usage: bounds-measure.ts <repo root> unread|stream|idle|half [flags]');

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

const path = join(tempDir(), 'm.sock');
const agent = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--conditions=@vaccel/source',
    join(root, 'packages/agent/src/bin.ts'),
    '-a',
    `unix://${path}`,
    '--no-shared-memory',
    ...flags,
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VACCEL_LOG_LEVEL: 'warn' } },
);
let log = '';
agent.stdout!.on('data', (d) => {
  log += d;
});
for (;;) {
  await sleep(200);
  try {
    const s = netConnect(path);
    await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
    s.destroy();
    break;
  } catch {}
}
await sleep(500);
const pid = agent.pid!;
const start = memory(pid);
const show = (what: string) => {
  const m = memory(pid);
  console.log(
    `${attack} ${what}: VmRSS ${(m.rss / MiB).toFixed(0)} MiB (+${((m.rss - start.rss) / MiB).toFixed(0)}), VmHWM ${(m.hwm / MiB).toFixed(0)} MiB (+${((m.hwm - start.rss) / MiB).toFixed(0)})`,
  );
};
show('start');

async function raw(): Promise<{ socket: Socket; next: () => Promise<Uint8Array> }> {
  const socket = netConnect(path);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const frames: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  const decoder = new FrameDecoder(
    1 << 30,
    (f) => {
      frames.push(Uint8Array.from(f.payload));
      wake?.();
    },
    () => {},
  );
  socket.on('data', (c: Buffer) => decoder.push(c));
  return {
    socket,
    next: async () => {
      while (frames.length === 0) await new Promise<void>((r) => (wake = r));
      return frames.shift()!;
    },
  };
}

const sync = SyncAgentService.method;
if (attack === 'unread') {
  const { fromBinary } = await import('@bufbuild/protobuf');
  const { ResponseSchema } = await import('@vaccel/ttrpc');
  const g = await raw();
  g.socket.write(requestFrame(1, AGENT_SERVICE_SYNC, 'CreateSession', sync.createSession.input, {}));
  const { sessionId } = fromBinary(
    sync.createSession.output,
    fromBinary(ResponseSchema, await g.next()).payload,
  );
  const blob = new Uint8Array(Number(process.env.RES_MIB ?? 64) * MiB).fill(1);
  g.socket.write(
    requestFrame(3, AGENT_SERVICE_SYNC, 'RegisterResource', sync.registerResource.input, {
      sessionId,
      resourceType: 2,
      blobs: [{ name: 'b', data: blob, size: blob.byteLength }],
    }),
  );
  const { resourceId } = fromBinary(
    sync.registerResource.output,
    fromBinary(ResponseSchema, await g.next()).payload,
  );
  show('resource registered');
  g.socket.pause();
  const n = Number(process.env.CALLS ?? 60);
  g.socket.write(
    Buffer.concat(
      Array.from({ length: n }, (_, i) =>
        requestFrame(5 + 2 * i, AGENT_SERVICE_SYNC, 'SyncResource', sync.syncResource.input, { resourceId }),
      ),
    ),
  );
  const seconds = Number(process.env.SECONDS ?? 15);
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    if ((i + 1) % 10 === 0) show(`${n} unread SyncResource, t+${i + 1}s`);
  }
} else if (attack === 'unread-genop') {
  // Noop genops, each asking for a 64 MiB output arg: 64 MiB replies for a few bytes of request.
  const { fromBinary } = await import('@bufbuild/protobuf');
  const { ResponseSchema } = await import('@vaccel/ttrpc');
  const g = await raw();
  g.socket.write(requestFrame(1, AGENT_SERVICE_SYNC, 'CreateSession', sync.createSession.input, {}));
  const { sessionId } = fromBinary(
    sync.createSession.output,
    fromBinary(ResponseSchema, await g.next()).payload,
  );
  g.socket.pause();
  const n = Number(process.env.CALLS ?? 40);
  // Each request carries a 64 MiB output arg, which the reply carries back.
  const out = new Uint8Array(64 * MiB).fill(4);
  const body = requestFrame(0, AGENT_SERVICE_SYNC, 'Genop', sync.genop.input, {
    sessionId,
    readArgs: [{ buf: new Uint8Array([0]), size: 1, argType: 9 }],
    writeArgs: [{ buf: out, size: out.byteLength, argType: 9 }],
  }).subarray(10);
  for (let i = 0; i < n; i++) {
    g.socket.write(encodeHeader(body.byteLength, 3 + 2 * i, FrameType.Request, 0));
    g.socket.write(body);
  }
  for (let i = 0; i < 10; i++) {
    await sleep(1000);
    show(`${n} unread 64 MiB genop replies, t+${i + 1}s`);
  }
} else if (attack === 'stream') {
  const g = await raw();
  const open = toBinary(
    RequestSchema,
    create(RequestSchema, {
      service: AGENT_SERVICE_ASYNC,
      method: 'GenopStream',
      payload: new Uint8Array(0),
    }),
  );
  g.socket.write(
    Buffer.concat([encodeHeader(open.byteLength, 1, FrameType.Request, FrameFlag.RemoteOpen), open]),
  );
  const chunk = toBinary(
    AgentService.method.genopStream.input,
    create(AgentService.method.genopStream.input, {
      sessionId: 1n,
      readArgs: [{ buf: new Uint8Array(16 * MiB).fill(2), size: 16 * MiB, argType: 9, parts: 1, partNo: 0 }],
    }),
  );
  const total = Number(process.env.STREAM_MIB ?? 1024);
  for (let sent = 0; sent < total; sent += 16)
    await new Promise<void>((r) =>
      g.socket.write(Buffer.concat([encodeHeader(chunk.byteLength, 1, FrameType.Data, 0), chunk]), () => r()),
    );
  await sleep(2000);
  show(`${total} MiB streamed, stream never closed`);
} else if (attack === 'idle') {
  const n = Number(process.env.CONNECTIONS ?? 5000);
  const held: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < n; i++) {
    const s = netConnect(path);
    s.on('error', () => {});
    s.on('close', () => closed++);
    await new Promise((r) => s.once('connect', r).once('error', r));
    held.push(s);
  }
  await sleep(3000);
  show(`${n} idle connections (${closed} closed by the agent)`);
} else if (attack === 'half') {
  const held: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < 6; i++) {
    const s = netConnect(path);
    s.on('error', () => {});
    s.on('close', () => closed++);
    await new Promise((r) => s.once('connect', r));
    await new Promise<void>((r) =>
      s.write(
        Buffer.concat([encodeHeader(128 * MiB, 1, FrameType.Request, 0), Buffer.alloc(64 * MiB, 3)]),
        () => r(),
      ),
    );
    held.push(s);
  }
  await sleep(2000);
  show(`six 128 MiB frames half-sent (${closed} closed)`);
  await sleep(Number(process.env.WAIT_MS ?? 5000));
  show(`later (${closed} closed)`);
}
console.log(
  log
    .split('\n')
    .filter((l) => /dropped|paused|refus|idle|frame/.test(l))
    .slice(0, 3)
    .join('\n'),
);
agent.kill('SIGKILL');
process.exit(0);
