/**
 * Messages between the plugin and its compute threads ({@link ComputeThreads}). Tensors travel as
 * typed arrays whose buffers are transferred, never cloned views.
 * @module
 * @internal
 */
import type { ModelInfo, SgemmArgs, Tensor } from '@vaccel/core';
import type { SessionSettings } from '../session.js';

/** What a compute thread is started with (its `workerData`). */
export interface ThreadConfig {
  settings: SessionSettings;
  /** The thread's nice value (Linux: per thread; ONNX Runtime's pool threads inherit it). */
  nice?: number | undefined;
}

/** One job for a compute thread. */
export type Job =
  | {
      kind: 'load';
      key: string;
      what: string;
      bytes: Uint8Array;
      /** Also open the model's wide session, with this many ONNX Runtime threads. */
      threads?: number | undefined;
    }
  | {
      kind: 'run';
      key: string;
      what: string;
      /** The model's bytes when this thread has not opened it yet. */
      bytes?: Uint8Array | undefined;
      inputs: Record<string, Tensor>;
      outputs: readonly string[];
      /**
       * ONNX Runtime threads for this run's session when not the settings' (a run alone on the
       * pool: {@link ComputeThreads}' `wideThreads`); the thread keeps that session beside the other.
       */
      threads?: number | undefined;
    }
  /** Frees a model's session, or an SGEMM's B kept for its next row blocks. */
  | { kind: 'release'; key: string }
  /**
   * One row block of an SGEMM, packed (lda = k, ldb = ldc = n). B is sent with the first block a
   * thread runs for SGEMM `key` and kept there under that key for the next ones (`args.b` is then
   * empty); `c` holds C's rows when beta ≠ 0 and is where the result goes. A, B and C are in
   * shared memory (never transferred).
   */
  | { kind: 'sgemm'; key: string; args: SgemmArgs };

/**
 * A job with its id, or `close`: free everything once the jobs before it are done, and end the
 * thread by letting its event loop run out (terminating a thread that holds ONNX Runtime objects
 * can abort the whole process: the binding throws a C++ exception nothing catches).
 */
export type Request = ({ id: number } & Job) | { id: number; kind: 'close' };

/** A thread's answer to job `id`. */
export interface Reply {
  id: number;
  info?: ModelInfo;
  outputs?: Record<string, Tensor>;
  c?: Float32Array;
  /** The thread no longer holds the SGEMM's B: send the block again with it. */
  missing?: boolean;
  /** The model's wide session could not be opened: the thread has (and used) the other only. */
  wideFailed?: boolean;
  error?: { code?: string | undefined; message: string };
}

/** The buffer of each typed array in `arrays`, each once, to transfer. */
export const buffersOf = (arrays: Iterable<ArrayBufferView>): ArrayBuffer[] => [
  ...new Set([...arrays].filter((a) => a.byteLength > 0).map((a) => a.buffer as ArrayBuffer)),
];

/**
 * A tensor whose data owns its whole buffer, so the buffer can be transferred: a copy when the
 * data is a view into something larger (transferring that would detach the caller's memory).
 */
export function owned(t: Tensor): Tensor {
  const d = t.data;
  const whole = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer;
  return whole ? t : ({ ...t, data: d.slice() } as Tensor);
}
