/**
 * Where the plugin runs the models guests load with model_load / tf_model_load or give an image
 * op: in runner processes ({@link ModelRunners}, the default) or, for trusted callers only, in
 * this process ({@link InProcessModels}). Both take ONNX bytes through model intake first.
 * @module
 * @internal
 */
import { type Logger, type ModelInfo, type Tensor, VaccelError } from '@vaccel/core';
import {
  createSession,
  describeSession,
  type OrtSession,
  runSession,
  type SessionSettings,
} from './session.js';

/** Per-call options of a {@link ModelHost}. */
export interface ModelCallOptions {
  signal?: AbortSignal | undefined;
  /** Where to report what the caller should not see (a runner's dying words). */
  logger?: Logger | undefined;
}

/** Runs models by digest. */
export interface ModelHost {
  /** Makes a session for `bytes` (once per digest) and says what the model declares. */
  load(digest: string, bytes: Uint8Array, what: string, opts?: ModelCallOptions): Promise<ModelInfo>;
  /** Runs a loaded model. */
  run(
    digest: string,
    inputs: Readonly<Record<string, Tensor>>,
    outputs: readonly string[],
    what: string,
    opts?: ModelCallOptions,
  ): Promise<Record<string, Tensor>>;
  /** Drops a model's sessions. */
  release(digest: string): Promise<void>;
  close(): Promise<void>;
}

/** Sessions in this process: no containment (a model's crash or memory is the host's). */
export class InProcessModels implements ModelHost {
  private readonly sessions = new Map<string, Promise<OrtSession>>();

  constructor(private readonly settings: SessionSettings) {}

  async load(digest: string, bytes: Uint8Array, what: string): Promise<ModelInfo> {
    let session = this.sessions.get(digest);
    if (!session) {
      session = createSession(bytes, this.settings, what);
      this.sessions.set(digest, session);
      session.catch(() => this.sessions.delete(digest));
    }
    return describeSession(await session);
  }

  async run(
    digest: string,
    inputs: Readonly<Record<string, Tensor>>,
    outputs: readonly string[],
    what: string,
  ): Promise<Record<string, Tensor>> {
    const session = this.sessions.get(digest);
    if (!session) throw new VaccelError('EINVAL', `${what}: not loaded`);
    return runSession(await session, inputs, outputs, what);
  }

  async release(digest: string): Promise<void> {
    const session = this.sessions.get(digest);
    this.sessions.delete(digest);
    await (await session?.catch(() => undefined))?.release();
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.sessions.keys()].map((digest) => this.release(digest)));
  }
}
