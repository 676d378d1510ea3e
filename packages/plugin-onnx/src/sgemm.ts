/**
 * SGEMM on ONNX Runtime: a one-node Gemm graph (C = alpha·A·B + beta·C), built in memory and cached
 * per shape and coefficients, run by ORT's MLAS kernels on the plugin's threads.
 * @module
 */
import type { SgemmArgs } from '@vaccel/core';
import * as ort from 'onnxruntime-node';
import { DataType, modelBytes, node, valueInfo } from './graph.js';
import { createSession, type OrtSession, type SessionSettings } from './session.js';

/** Graphs kept (least recently used dropped first). */
const MAX_CACHED = 16;

/** The Gemm model for one shape and (alpha, beta). */
export function gemmModel(m: number, n: number, k: number, alpha: number, beta: number): Uint8Array {
  const withC = beta !== 0;
  return modelBytes({
    name: `sgemm_${m}x${n}x${k}`,
    nodes: [
      node('Gemm', withC ? ['A', 'B', 'C'] : ['A', 'B'], ['Y'], {
        alpha: { float: alpha },
        beta: { float: beta },
      }),
    ],
    inputs: [
      valueInfo('A', DataType.FLOAT, [m, k]),
      valueInfo('B', DataType.FLOAT, [k, n]),
      ...(withC ? [valueInfo('C', DataType.FLOAT, [m, n])] : []),
    ],
    outputs: [valueInfo('Y', DataType.FLOAT, [m, n])],
  });
}

/** Copies a strided row-major matrix into a packed one (no copy when already packed). */
function packed(data: Float32Array, rows: number, cols: number, ld: number): Float32Array {
  if (ld === cols) return data.length === rows * cols ? data : data.subarray(0, rows * cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * ld, r * ld + cols), r * cols);
  return out;
}

/** Runs SGEMM through cached Gemm sessions. */
export class OrtSgemm {
  readonly #sessions = new Map<string, Promise<OrtSession>>();

  constructor(private readonly settings: SessionSettings) {}

  #session(m: number, n: number, k: number, alpha: number, beta: number): Promise<OrtSession> {
    const key = `${m},${n},${k},${alpha},${beta}`;
    let session = this.#sessions.get(key);
    if (session) {
      this.#sessions.delete(key); // re-insert: most recently used last
    } else {
      session = createSession(gemmModel(m, n, k, alpha, beta), this.settings, 'sgemm');
      session.catch(() => this.#sessions.delete(key));
      if (this.#sessions.size >= MAX_CACHED) {
        const [oldest, evicted] = this.#sessions.entries().next().value!;
        this.#sessions.delete(oldest);
        void evicted.then((s) => s.release()).catch(() => {});
      }
    }
    this.#sessions.set(key, session);
    return session;
  }

  /** C = alpha·A·B + beta·C, writing into `s.c` (honouring ldc). */
  async run(s: SgemmArgs): Promise<void> {
    const { m, n, k, alpha, beta } = s;
    const session = await this.#session(m, n, k, alpha, beta);
    const feeds: Record<string, ort.Tensor> = {
      A: new ort.Tensor('float32', packed(s.a, m, k, s.lda), [m, k]),
      B: new ort.Tensor('float32', packed(s.b, k, n, s.ldb), [k, n]),
    };
    if (beta !== 0) feeds.C = new ort.Tensor('float32', packed(s.c, m, n, s.ldc), [m, n]);
    else if (s.ldc === n) {
      // C is output only and packed: ORT writes it in place (in shared memory, nothing is copied).
      await session.run(feeds, { Y: new ort.Tensor('float32', s.c.subarray(0, m * n), [m, n]) });
      return;
    }
    const y = (await session.run(feeds, ['Y'])).Y!.data as Float32Array;
    if (s.ldc === n) s.c.set(y.subarray(0, m * n));
    else for (let r = 0; r < m; r++) s.c.set(y.subarray(r * n, r * n + n), r * s.ldc);
  }

  /** Frees every cached session. */
  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.allSettled(sessions.map(async (s) => (await s).release()));
  }
}
