/**
 * SGEMM on ONNX Runtime: a one-node Gemm graph (C = alpha·A·B + beta·C), built in memory and cached
 * per shape and coefficients, run by ORT's MLAS kernels on the plugin's threads.
 *
 * ORT cannot stop a running Gemm (its Node binding has no `terminate`, and a single kernel checks
 * no flag anyway), and the binding runs on the event loop's thread. So big problems run as row
 * blocks of about {@link BLOCK_FLOPS}: between blocks the agent serves other calls and timers,
 * and an aborted signal (a deadline, a cancel, a closed connection) ends the multiplication.
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { Logger, SgemmArgs } from '@vaccel/core';
import { DataType, modelBytes, node, valueInfo } from '@vaccel/tf2onnx/onnx';
import * as ort from 'onnxruntime-node';
import { createSession, type OrtSession, type SessionSettings } from './session.js';

/** Graphs kept (least recently used dropped first). */
const MAX_CACHED = 16;

/**
 * Work per ORT run, in flops: 2–3 ms at the 150–300 GFLOP/s two cores give, so work stops
 * within one block of an abort, and, above all, so the agent answers its other guests between
 * blocks: onnxruntime-node runs a session on the calling thread (its `run` only defers the native
 * call with setImmediate), so in the agent a block holds the main thread for as long as it runs.
 * Issue 22, 4 guests looping 1024² SGEMMs beside a light one: 4e9 (one block per SGEMM) gave the
 * light guest's noop p50 9.4 ms, 5e8 gave 3.0 ms. Earlier, at 4096³ (2 threads): 128-row blocks
 * (≈ 4.3 GFLOP) took 785 ms, one whole run 794 ms; MLAS packs B per run, which costs little.
 */
export const BLOCK_FLOPS = 5e8;

/**
 * Publishes `{ block, blocks }` on `diagnostics_channel` `vaccel:onnx:sgemm` as each row block
 * starts: what a test or a profiler watches to act while a multiplication is under way.
 */
export const sgemmChannel = channel('vaccel:onnx:sgemm');

/** Where a run reports that it stopped early (or ran on after its caller gave up). */
export interface SgemmRunContext {
  signal?: AbortSignal | undefined;
  /** Awaited between row blocks: a scheduler may run another caller's op first (OpContext.checkpoint). */
  checkpoint?: (() => Promise<void>) | undefined;
  logger?: Logger;
}

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
  packInto(out, data, rows, cols, ld);
  return out;
}

/** Copies a `rows` × `cols` row-major matrix with leading dimension `ld` into packed `out`. @internal */
export function packInto(
  out: Float32Array,
  data: Float32Array,
  rows: number,
  cols: number,
  ld: number,
): void {
  if (ld === cols) out.set(data.subarray(0, rows * cols));
  else for (let r = 0; r < rows; r++) out.set(data.subarray(r * ld, r * ld + cols), r * cols);
}

/** Copies packed `rows` × `cols` `data` into `out`, whose leading dimension is `ld`. @internal */
export function unpackInto(
  out: Float32Array,
  ld: number,
  data: Float32Array,
  rows: number,
  cols: number,
): void {
  if (ld === cols) out.set(data.subarray(0, rows * cols));
  else for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols, r * cols + cols), r * ld);
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

  /**
   * C = alpha·A·B + beta·C, writing into `s.c` (honouring ldc), in row blocks of about
   * {@link BLOCK_FLOPS}. An abort between blocks rejects with the signal's reason (rows already
   * done are written, the rest of C keeps its old values).
   */
  async run(s: SgemmArgs, ctx: SgemmRunContext = {}): Promise<void> {
    const { m, n, k } = s;
    const { signal, logger, checkpoint } = ctx;
    const rows = Math.max(1, Math.min(m, Math.floor(BLOCK_FLOPS / Math.max(1, 2 * n * k))));
    const blocks = Math.ceil(m / rows);
    const b = packed(s.b, k, n, s.ldb); // once for every block
    for (let block = 0; block < blocks; block++) {
      // A turn of the event loop first: a deadline that passed during the last block fires now,
      // so the check below sees it (ORT's own setImmediate would run the next block first).
      if (block > 0 && signal) await new Promise((resolve) => setImmediate(resolve));
      if (block > 0) await checkpoint?.();
      if (signal?.aborted) {
        logger?.debug({ blocks, done: block, m, n, k }, 'sgemm stopped early: its caller gave up');
        throw signal.reason;
      }
      if (sgemmChannel.hasSubscribers) sgemmChannel.publish({ block, blocks });
      const r0 = block * rows;
      await this.#block(s, b, r0, Math.min(rows, m - r0));
    }
    if (signal?.aborted) logger?.debug({ blocks, m, n, k }, 'sgemm ran to the end after its caller gave up');
  }

  /** Rows r0 … r0+mb of C. */
  async #block(s: SgemmArgs, b: Float32Array, r0: number, mb: number): Promise<void> {
    const { n, k, alpha, beta, ldc } = s;
    const session = await this.#session(mb, n, k, alpha, beta);
    const c = s.c.subarray(r0 * ldc);
    const feeds: Record<string, ort.Tensor> = {
      A: new ort.Tensor('float32', packed(s.a.subarray(r0 * s.lda), mb, k, s.lda), [mb, k]),
      B: new ort.Tensor('float32', b, [k, n]),
    };
    if (beta !== 0) feeds.C = new ort.Tensor('float32', packed(c, mb, n, ldc), [mb, n]);
    else if (ldc === n) {
      // C is output only and packed: ORT writes it in place (in shared memory, nothing is copied).
      await session.run(feeds, { Y: new ort.Tensor('float32', c.subarray(0, mb * n), [mb, n]) });
      return;
    }
    const y = (await session.run(feeds, ['Y'])).Y!.data as Float32Array;
    unpackInto(c, ldc, y, mb, n);
  }

  /** Frees every cached session. */
  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.allSettled(sessions.map(async (s) => (await s).release()));
  }
}
