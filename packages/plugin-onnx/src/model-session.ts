/**
 * The inference session behind an image op's model, wherever it runs. The shipped models (the
 * host's own, read from its models folder) run in this process ({@link inProcessSession}): they
 * are trusted, and the fastest. A guest's model (a resource's bytes) runs on the plugin's
 * {@link ModelHost} ({@link hostedSession}): in a runner process under the memory cap, so a
 * classifier or detector that asks for too much fails its own call, as model_run does. Decoding
 * the image and reading the outputs (softmax, boxes, masks, drawing) stay in the plugin either way.
 * @module
 * @internal
 */
import type { Tensor } from '@vaccel/core';
import type { ModelCallOptions, ModelHost } from './model-host.js';
import { createSession, runChecked, type SessionSettings } from './session.js';

/** A model's session, as the image ops use it. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the model; `outputs` empty means all of them. */
  run(
    inputs: Readonly<Record<string, Tensor>>,
    outputs: readonly string[],
    opts?: ModelCallOptions,
  ): Promise<Record<string, Tensor>>;
  /** Frees the session. */
  release(): Promise<void>;
}

/** Opens a session on ONNX bytes. */
export type SessionOpener = (bytes: Uint8Array, what: string) => Promise<ModelSession>;

/**
 * Sessions in this process, for the host's own models: nothing contains them.
 * @throws VaccelError `EINVAL` (from the opener) for a model ONNX Runtime or intake refuses.
 */
export const inProcessSession =
  (settings: SessionSettings): SessionOpener =>
  async (bytes, what) => {
    const session = await createSession(bytes, settings, what);
    // ONNX Runtime's node binding cannot stop a run: an abort is seen by the caller, after it.
    return {
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: (inputs, outputs) => runChecked(session, inputs, outputs, what),
      release: () => session.release(),
    };
  };

/**
 * Sessions on `host` under `key`, for guests' models: the model's bytes pass intake and run where
 * the host runs them (a runner process, unless the plugin was told `modelRunners: 0`). `key` must
 * be the caller's alone (the host drops the model on release), `opts` are the loading call's.
 */
export const hostedSession =
  (host: ModelHost, key: string, opts: ModelCallOptions): SessionOpener =>
  async (bytes, what) => {
    const info = await host.load(key, bytes, what, opts);
    return {
      inputNames: info.inputs.map((i) => i.name),
      outputNames: info.outputs.map((o) => o.name),
      run: (inputs, outputs, callOpts) => host.run(key, inputs, outputs, what, callOpts),
      release: () => host.release(key),
    };
  };
