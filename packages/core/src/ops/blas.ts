/**
 * BLAS SGEMM: C = alpha·A·B + beta·C on row-major float32 matrices.
 *
 * Genop layout (upstream BLAS_SGEMM, docs/protocol.md §5) — read: m, n, k (INT64), alpha
 * (FLOAT32), A (FLOAT32_ARRAY), lda (INT64), B (FLOAT32_ARRAY), ldb (INT64), beta (FLOAT32),
 * ldc (INT64); write: C (FLOAT32_ARRAY, in/out: its incoming values feed beta·C).
 * @module
 */
import { type Arg, Args, ArgType, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';

/** SGEMM parameters. Matrices are row-major; leading dimensions default to the packed row length. */
export interface SgemmParams {
  /** Rows of A and C. */
  m: number;
  /** Columns of B and C. */
  n: number;
  /** Columns of A, rows of B. */
  k: number;
  /** Default 1. */
  alpha?: number;
  /** m×k, row stride `lda`. */
  a: Float32Array;
  /** Row stride of A; default k (then `a.length` must be exactly m·k). */
  lda?: number;
  /** k×n, row stride `ldb`. */
  b: Float32Array;
  /** Row stride of B; default n. */
  ldb?: number;
  /** Default 0. */
  beta?: number;
  /** m×n, row stride `ldc`; updated in place and returned. Default: a new zeroed array. */
  c?: Float32Array;
  /** Row stride of C; default n. */
  ldc?: number;
}

/** Fully specified SGEMM arguments, as a plugin receives them. */
export interface SgemmArgs {
  m: number;
  n: number;
  k: number;
  alpha: number;
  a: Float32Array;
  lda: number;
  b: Float32Array;
  ldb: number;
  beta: number;
  c: Float32Array;
  ldc: number;
}

/** Floating-point operations of one SGEMM (2·m·n·k). */
export const sgemmFlops = (m: number, n: number, k: number): number => 2 * m * n * k;

function checkDims(m: number, n: number, k: number): void {
  for (const [name, value] of Object.entries({ m, n, k })) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new VaccelError('EINVAL', `sgemm: ${name} = ${value} must be ≥ 0`);
  }
}

/**
 * Checks dimensions, leading dimensions and array lengths.
 * @throws VaccelError `EINVAL` describing the mismatch.
 */
export function checkSgemmArgs(args: SgemmArgs): void {
  const { m, n, k, lda, ldb, ldc } = args;
  checkDims(m, n, k);
  // Zero dimensions are a BLAS quick return, so their strides only need to be ≥ 1 when used.
  const stride = (name: string, value: number, min: number): void => {
    if (!Number.isSafeInteger(value) || value < Math.max(1, min)) {
      throw new VaccelError('EINVAL', `sgemm: ${name} = ${value} must be ≥ ${Math.max(1, min)}`);
    }
  };
  stride('lda', lda, k);
  stride('ldb', ldb, n);
  stride('ldc', ldc, n);
  const need = (name: string, array: Float32Array, rows: number, cols: number, ld: number): void => {
    const required = rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
    if (array.length < required) {
      throw new VaccelError(
        'EINVAL',
        `sgemm: ${name} has ${array.length} elements, ${rows}×${cols} with ld ${ld} needs ${required}`,
      );
    }
  };
  need('A', args.a, m, k, lda);
  need('B', args.b, k, n, ldb);
  need('C', args.c, m, n, ldc);
  if (!Number.isFinite(args.alpha) || !Number.isFinite(args.beta)) {
    throw new VaccelError('EINVAL', 'sgemm: alpha and beta must be finite');
  }
}

/** Fills defaults and checks a caller's parameters; packed arrays must match m, n, k exactly. */
export function normalizeSgemm(p: SgemmParams): SgemmArgs {
  const exact = (
    name: string,
    array: Float32Array | undefined,
    rows: number,
    cols: number,
    ld?: number,
  ): void => {
    if (array !== undefined && ld === undefined && array.length !== rows * cols) {
      throw new VaccelError(
        'EINVAL',
        `sgemm: ${name} has ${array.length} elements, expected ${rows}×${cols} = ${rows * cols}`,
      );
    }
  };
  if (!(p.a instanceof Float32Array) || !(p.b instanceof Float32Array)) {
    throw new VaccelError('EINVAL', 'sgemm: a and b must be Float32Arrays');
  }
  if (p.c !== undefined && !(p.c instanceof Float32Array))
    throw new VaccelError('EINVAL', 'sgemm: c must be a Float32Array');
  checkDims(p.m, p.n, p.k);
  exact('A', p.a, p.m, p.k, p.lda);
  exact('B', p.b, p.k, p.n, p.ldb);
  exact('C', p.c, p.m, p.n, p.ldc);
  const ldc = p.ldc ?? Math.max(1, p.n);
  const args: SgemmArgs = {
    m: p.m,
    n: p.n,
    k: p.k,
    alpha: p.alpha ?? 1,
    a: p.a,
    lda: p.lda ?? Math.max(1, p.k),
    b: p.b,
    ldb: p.ldb ?? Math.max(1, p.n),
    beta: p.beta ?? 0,
    c: p.c ?? new Float32Array(p.m === 0 ? 0 : (p.m - 1) * ldc + p.n),
    ldc,
  };
  checkSgemmArgs(args);
  return args;
}

/** Packs SGEMM into upstream's genop args (no copies of the matrices). */
export function packSgemm(s: SgemmArgs): { read: Arg[]; write: Arg[] } {
  return {
    read: [
      Args.int64(s.m),
      Args.int64(s.n),
      Args.int64(s.k),
      Args.float32(s.alpha),
      Args.float32Array(s.a),
      Args.int64(s.lda),
      Args.float32Array(s.b),
      Args.int64(s.ldb),
      Args.float32(s.beta),
      Args.int64(s.ldc),
    ],
    write: [Args.float32Array(s.c)],
  };
}

/** Unpacks and checks SGEMM genop args. @throws VaccelError `EINVAL`. */
export function unpackSgemm(read: readonly Arg[], write: readonly Arg[]): SgemmArgs {
  if (read.length !== 10 || write.length !== 1) {
    throw new VaccelError(
      'EINVAL',
      `sgemm takes 10 read args and 1 write arg, got ${read.length} and ${write.length}`,
    );
  }
  const args: SgemmArgs = {
    m: ReadArg.int64(read[0], 'sgemm m'),
    n: ReadArg.int64(read[1], 'sgemm n'),
    k: ReadArg.int64(read[2], 'sgemm k'),
    alpha: ReadArg.float32(read[3], 'sgemm alpha'),
    a: ReadArg.float32Array(read[4], 'sgemm A'),
    lda: ReadArg.int64(read[5], 'sgemm lda'),
    b: ReadArg.float32Array(read[6], 'sgemm B'),
    ldb: ReadArg.int64(read[7], 'sgemm ldb'),
    beta: ReadArg.float32(read[8], 'sgemm beta'),
    ldc: ReadArg.int64(read[9], 'sgemm ldc'),
    c: ReadArg.float32Array(write[0], 'sgemm C'),
  };
  checkSgemmArgs(args);
  return args;
}

/**
 * Makes an SGEMM op handler from a function that computes into `args.c`. It unpacks and checks
 * the args and, when C arrived misaligned (so `args.c` is a copy), copies the result back.
 */
export function sgemmHandler(compute: (args: SgemmArgs, ctx: OpContext) => Promise<void> | void): OpHandler {
  return async ({ read, write }, ctx) => {
    const args = unpackSgemm(read, write);
    if (args.m === 0 || args.n === 0) return;
    await compute(args, ctx);
    const out = write[0]!.buf;
    if (args.c.buffer !== out.buffer)
      out.set(new Uint8Array(args.c.buffer, args.c.byteOffset, out.byteLength));
  };
}

/**
 * TORCH_SGEMM (16): out = A·B + C, row-major float32 (torch's `addmm`). Upstream has no genop
 * layout for it (its RPC client never sends it), so the layout is ours — read: A (FLOAT32_ARRAY,
 * m×k), B (FLOAT32_ARRAY, k×n), C (FLOAT32_ARRAY, m×n), m, n, k (INT32); write: out
 * (FLOAT32_ARRAY, m×n). It runs on the same kernels as BLAS_SGEMM.
 */
export function packTorchSgemm(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  m: number,
  n: number,
  k: number,
): { read: Arg[]; write: Arg[] } {
  return {
    read: [
      Args.float32Array(a),
      Args.float32Array(b),
      Args.float32Array(c),
      Args.int32(m),
      Args.int32(n),
      Args.int32(k),
    ],
    write: [Args.float32Array(new Float32Array(m * n))],
  };
}

/** Makes the TORCH_SGEMM handler from an SGEMM implementation. */
export function torchSgemmHandler(
  compute: (args: SgemmArgs, ctx: OpContext) => Promise<void> | void,
): OpHandler {
  return async ({ read, write }, ctx) => {
    if (read.length !== 6 || write.length !== 1)
      throw new VaccelError(
        'EINVAL',
        `torch_sgemm takes 6 read args (A, B, C, m, n, k) and 1 write arg, got ${read.length} and ${write.length}`,
      );
    const [m, n, k] = [3, 4, 5].map((i, j) => ReadArg.int32(read[i], `torch_sgemm ${'mnk'[j]}`)) as [
      number,
      number,
      number,
    ];
    checkDims(m, n, k);
    const a = ReadArg.float32Array(read[0], 'torch_sgemm A');
    const b = ReadArg.float32Array(read[1], 'torch_sgemm B');
    const c = ReadArg.float32Array(read[2], 'torch_sgemm C');
    const out = ReadArg.bytes(write[0], 'torch_sgemm out', [ArgType.Float32Array]);
    for (const [name, array, size] of [
      ['A', a.length, m * k],
      ['B', b.length, k * n],
      ['C', c.length, m * n],
      ['out', out.byteLength / 4, m * n],
    ] as const) {
      if (array !== size)
        throw new VaccelError(
          'EINVAL',
          `torch_sgemm: ${name} has ${array} floats, ${m}×${n}×${k} needs ${size}`,
        );
    }
    const result = Float32Array.from(c);
    if (m > 0 && n > 0)
      await compute({ m, n, k, alpha: 1, a, lda: k, b, ldb: n, beta: 1, c: result, ldc: n }, ctx);
    out.set(new Uint8Array(result.buffer));
  };
}
