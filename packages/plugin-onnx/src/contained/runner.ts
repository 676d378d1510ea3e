/**
 * A model runner: the child process that runs guests' ONNX models for the plugin, so that a model
 * that crashes ONNX Runtime or takes more memory than it may have ends this process, never the
 * agent. Started by {@link ModelRunners} with an empty folder as its working directory and no
 * environment of the agent's; after it reports READY the plugin caps its address space
 * (RLIMIT_AS). It reads frames ({@link Kind}) from fd 3 and handles them one at a time: the plugin
 * gives it one call at a time, and a RELEASE waits for the run before it.
 *
 * argv[2]: {@link RunnerConfig} as JSON.
 * @module
 * @internal
 */
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isVaccelError, type Tensor, VaccelError } from '@vaccel/core';
import * as ort from 'onnxruntime-node';
import type { IntakeLimits } from '../intake.js';
import { createSession, describeSession, type OrtSession, runChecked } from '../session.js';
import {
  bytesOf,
  encodeFrame,
  type Frame,
  FrameReader,
  Kind,
  MAX_BODY_BYTES,
  type TensorMeta,
  typedView,
} from './protocol.js';

/** What the plugin tells a runner at start. */
export interface RunnerConfig {
  executionProviders: string[];
  intraOpThreads: number;
  intake: IntakeLimits;
  /** Most bytes one run's outputs may take together (else `E2BIG`). */
  maxOutputBytes: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
const settings = {
  executionProviders: config.executionProviders,
  intraOpThreads: config.intraOpThreads,
  intake: config.intake,
  // Tenants share a runner: one run's peak must not stay allocated under the next one's.
  memoryArena: false,
};
ort.env.logLevel = 'error';

const sessions = new Map<string, OrtSession>();
const channel = new Socket({ fd: 3, readable: true, writable: true });
// The plugin is this process's only input; it sends what it means to.
const reader = new FrameReader(MAX_BODY_BYTES);

const send = (id: number, kind: Kind, meta: Record<string, unknown>, blobs: Uint8Array[] = []) => {
  channel.cork();
  for (const chunk of encodeFrame(id, kind, meta, blobs)) channel.write(chunk);
  channel.uncork();
};

// Error messages go to a guest: they must not name this host's folders (ONNX Runtime's messages
// may quote a working directory or a file it looked for).
const hostPaths = [process.cwd(), tmpdir(), fileURLToPath(new URL('../../../..', import.meta.url))]
  .filter((p): p is string => !!p && p.length > 1)
  .sort((a, b) => b.length - a.length);
const scrub = (message: string) => hostPaths.reduce((m, p) => m.split(p).join('<host>'), message);

async function handle(frame: Frame): Promise<void> {
  const { meta } = frame;
  const digest = String(meta.digest);
  const what = String(meta.what ?? 'model');
  switch (frame.kind) {
    case Kind.Load: {
      let session = sessions.get(digest);
      if (!session) {
        session = await createSession(frame.blobs[0] ?? new Uint8Array(0), settings, what);
        sessions.set(digest, session);
      }
      send(frame.id, Kind.Reply, { info: describeSession(session) });
      return;
    }
    case Kind.Run: {
      const session = sessions.get(digest);
      if (!session) throw new VaccelError('EPROTO', `${what}: not loaded in this model runner`);
      const inputs: Record<string, Tensor> = {};
      (meta.inputs as TensorMeta[]).forEach((t, i) => {
        inputs[t.name] = {
          dtype: t.dtype,
          dims: t.dims,
          data: typedView(t.dtype, frame.blobs[i]!),
        } as Tensor;
      });
      const outputs = await runChecked(session, inputs, meta.outputs as string[], what);
      const entries = Object.entries(outputs);
      const total = entries.reduce((sum, [, t]) => sum + t.data.byteLength, 0);
      if (total > config.maxOutputBytes)
        throw new VaccelError(
          'E2BIG',
          `${what}: the outputs take ${total} bytes, over the ${config.maxOutputBytes}-byte limit`,
        );
      send(
        frame.id,
        Kind.Reply,
        { outputs: entries.map(([name, t]) => ({ name, dtype: t.dtype, dims: t.dims })) },
        entries.map(([, t]) => bytesOf(t.data)),
      );
      return;
    }
    case Kind.Release: {
      const session = sessions.get(digest);
      sessions.delete(digest);
      await session?.release();
      return;
    }
    default:
      throw new VaccelError('EPROTO', `model runner: unknown frame kind ${frame.kind}`);
  }
}

let queue = Promise.resolve();
channel.on('data', (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    queue = queue.then(() =>
      handle(frame).catch((error: unknown) => {
        if (frame.kind === Kind.Release) return;
        const code = isVaccelError(error) ? error.code : 'EPROTO';
        send(frame.id, Kind.Reply, { error: { code, message: scrub((error as Error).message) } });
      }),
    );
  }
});
// The plugin closed its end (or died): nothing more will come.
channel.on('close', () => process.exit(0));
channel.on('error', () => process.exit(0));

const vmSize = Number(/VmSize:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
send(0, Kind.Ready, { vmSize });
