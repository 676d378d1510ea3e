/**
 * A compute thread: runs the host's own models and SGEMMs on ONNX Runtime off the event loop's
 * thread (see {@link ComputeThreads}). Jobs run one at a time in arrival order.
 * @module
 * @internal
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { isVaccelError } from '@vaccel/core';
import * as ort from 'onnxruntime-node';
import { createSession, describeSession, type OrtSession, runSession } from '../session.js';
import { OrtSgemm } from '../sgemm.js';
import { buffersOf, type Job, owned, type Reply, type Request, type ThreadConfig } from './protocol.js';

const { settings, nice } = workerData as ThreadConfig;
if (nice) lowerPriority(nice);
ort.env.logLevel = 'error';
const port = parentPort!;
const sessions = new Map<string, Promise<OrtSession>>();
const sgemm = new OrtSgemm(settings);
/** Reused memory for SGEMM blocks' A and C, by role, up to this size each. */
const MAX_SCRATCH_BYTES = 16 * 2 ** 20;
const scratches = new Map<string, Float32Array>();

/** This thread's own array for `role`, as long as `shared`, holding its contents if `copy`. */
function scratch(role: string, shared: Float32Array, copy: boolean): Float32Array {
  let own = scratches.get(role);
  if (own?.length !== shared.length) {
    own = new Float32Array(shared.length);
    scratches.set(role, own);
  }
  if (copy) own.set(shared);
  return own;
}

/** The B of SGEMMs under way, by key (a few: their blocks come in turns). */
const operands = new Map<string, Float32Array>();
const MAX_OPERANDS = 16;
/** …and at most this many bytes of them: an evicted B is sent again with its SGEMM's next block. */
const MAX_OPERAND_BYTES = 256 * 2 ** 20;

/** The session of model `key` with `threads` ONNX Runtime threads (default: the settings'). */
function open(
  key: string,
  bytes: Uint8Array | undefined,
  what: string,
  threads?: number,
): Promise<OrtSession> {
  const sessionKey = threads === undefined ? key : `${key}@${threads}`;
  let session = sessions.get(sessionKey);
  if (!session) {
    if (!bytes) throw new Error(`${what}: this thread has no session ${sessionKey}`);
    session = createSession(
      bytes,
      threads === undefined ? settings : { ...settings, intraOpThreads: threads },
      what,
    );
    sessions.set(sessionKey, session);
    session.catch(() => sessions.delete(sessionKey));
  }
  return session;
}

async function handle(job: Job): Promise<Omit<Reply, 'id'>> {
  switch (job.kind) {
    case 'load': {
      const info = describeSession(await open(job.key, job.bytes, job.what));
      // The wide session is a speed-up: a model whose wide session fails still loads.
      const wideFailed =
        job.threads !== undefined &&
        (await open(job.key, job.bytes, job.what, job.threads).then(
          () => false,
          () => true,
        ));
      return wideFailed ? { info, wideFailed } : { info };
    }
    case 'run': {
      let session: OrtSession;
      let wideFailed = false;
      if (job.threads === undefined) session = await open(job.key, job.bytes, job.what);
      else
        session = await open(job.key, job.bytes, job.what, job.threads).catch(() => {
          wideFailed = true;
          return open(job.key, job.bytes, job.what);
        });
      const outputs = await runSession(session, job.inputs, job.outputs, job.what);
      for (const [name, t] of Object.entries(outputs)) outputs[name] = owned(t);
      return wideFailed ? { outputs, wideFailed } : { outputs };
    }
    case 'release': {
      operands.delete(job.key);
      // The model's sessions: the settings' and any wide one (`key@threads`).
      const mine = [...sessions].filter(([k]) => k === job.key || k.startsWith(`${job.key}@`));
      for (const [k] of mine) sessions.delete(k);
      await Promise.all(mine.map(async ([, s]) => (await s.catch(() => undefined))?.release()));
      return {};
    }
    case 'sgemm': {
      // Operands arrive in shared memory, which ONNX Runtime's binding refuses: this thread
      // copies them into memory of its own (and keeps B for the SGEMM's next blocks).
      const shared = job.args;
      let b: Float32Array;
      if (shared.b.length > 0) {
        b = shared.b.slice();
        operands.delete(job.key); // re-inserted: most recent last
        operands.set(job.key, b);
        let bytes = 0;
        for (const kept of operands.values()) bytes += kept.byteLength;
        for (const [oldest, kept] of operands) {
          if (operands.size <= 1 || (operands.size <= MAX_OPERANDS && bytes <= MAX_OPERAND_BYTES)) break;
          operands.delete(oldest);
          bytes -= kept.byteLength;
        }
      } else {
        const kept = operands.get(job.key);
        if (!kept) return { missing: true }; // dropped for newer ones: the plugin sends it again
        b = kept;
      }
      const a = scratch('a', shared.a, true);
      const c = scratch('c', shared.c, shared.beta !== 0);
      try {
        await sgemm.run({ ...shared, a, b, c });
        shared.c.set(c);
      } finally {
        // Big blocks (a tall, narrow SGEMM's) are not kept for the thread's life.
        for (const [role, kept] of scratches) if (kept.byteLength > MAX_SCRATCH_BYTES) scratches.delete(role);
      }
      return {};
    }
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (request: Request) => {
  if (request.kind === 'close') {
    queue = queue.then(async () => {
      await sgemm.close();
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.allSettled(open.map(async (session) => (await session).release()));
      port.close();
    });
    return;
  }
  const { id, ...job } = request;
  queue = queue.then(async () => {
    let reply: Reply;
    try {
      reply = { id, ...(await handle(job as Job)) };
    } catch (error) {
      const code = isVaccelError(error) ? error.code : undefined;
      port.postMessage({ id, error: { code, message: (error as Error)?.message ?? String(error) } });
      return;
    }
    const arrays = [...Object.values(reply.outputs ?? {}).map((t) => t.data), ...(reply.c ? [reply.c] : [])];
    try {
      port.postMessage(reply, buffersOf(arrays));
    } catch {
      port.postMessage(reply); // a buffer ONNX Runtime will not let go of: copied instead
    }
  });
});

/**
 * Sets this thread's nice value, before any session makes ONNX Runtime's pool threads (they
 * inherit it). On Linux a priority belongs to a thread: setpriority on this thread's id leaves
 * the event loop's thread alone. Best effort: elsewhere, or when refused, the thread runs as it is.
 */
function lowerPriority(value: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    if (Number.isSafeInteger(tid)) setPriority(tid, value);
  } catch {
    // not Linux, or not allowed
  }
}
