/**
 * Cache-blocked SGEMM in plain TypeScript: the correctness oracle and the always-available
 * fallback. Row-major; C = alpha·A·B + beta·C with BLAS semantics (beta = 0 ignores C's contents,
 * so NaNs there do not leak in).
 *
 * Blocking: a KB×NB tile of B (128×256 floats = 128 KiB) stays in L2 while every row of A passes
 * over it; the inner loop updates two rows of C from four rows of B, so each B load feeds two
 * multiply-adds and each C load/store four (measured 3.9 GFLOP/s at N=1024 vs 2.5 for one row).
 * @module
 */
import type { SgemmArgs } from '../../ops/blas.js';

const KB = 128;
const NB = 256;

/** Computes SGEMM into `s.c`. Synchronous; callers move big problems off the event loop. */
export function sgemmKernel(s: SgemmArgs): void {
  const { m, n, k, alpha, beta, c, ldc } = s;
  for (let i = 0; i < m; i++) {
    const row = i * ldc;
    if (beta === 0) c.fill(0, row, row + n);
    else if (beta !== 1) for (let j = row; j < row + n; j++) c[j] = beta * c[j]!;
  }
  if (alpha === 0 || k === 0) return;
  for (let k0 = 0; k0 < k; k0 += KB) {
    const k1 = Math.min(k, k0 + KB);
    for (let j0 = 0; j0 < n; j0 += NB) {
      const j1 = Math.min(n, j0 + NB);
      let i = 0;
      for (; i + 1 < m; i += 2) twoRows(s, i, k0, k1, j0, j1);
      if (i < m) oneRow(s, i, k0, k1, j0, j1);
    }
  }
}

function twoRows(s: SgemmArgs, i: number, k0: number, k1: number, j0: number, j1: number): void {
  const { alpha, a, lda, b, ldb, c, ldc } = s;
  const c0 = i * ldc;
  const c1 = c0 + ldc;
  const r0 = i * lda;
  const r1 = r0 + lda;
  let p = k0;
  for (; p + 3 < k1; p += 4) {
    const x0 = alpha * a[r0 + p]!;
    const x1 = alpha * a[r0 + p + 1]!;
    const x2 = alpha * a[r0 + p + 2]!;
    const x3 = alpha * a[r0 + p + 3]!;
    const y0 = alpha * a[r1 + p]!;
    const y1 = alpha * a[r1 + p + 1]!;
    const y2 = alpha * a[r1 + p + 2]!;
    const y3 = alpha * a[r1 + p + 3]!;
    const b0 = p * ldb;
    const b1 = b0 + ldb;
    const b2 = b1 + ldb;
    const b3 = b2 + ldb;
    for (let j = j0; j < j1; j++) {
      const v0 = b[b0 + j]!;
      const v1 = b[b1 + j]!;
      const v2 = b[b2 + j]!;
      const v3 = b[b3 + j]!;
      c[c0 + j] = c[c0 + j]! + x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3;
      c[c1 + j] = c[c1 + j]! + y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3;
    }
  }
  for (; p < k1; p++) {
    const x = alpha * a[r0 + p]!;
    const y = alpha * a[r1 + p]!;
    const bp = p * ldb;
    for (let j = j0; j < j1; j++) {
      const v = b[bp + j]!;
      c[c0 + j] = c[c0 + j]! + x * v;
      c[c1 + j] = c[c1 + j]! + y * v;
    }
  }
}

function oneRow(s: SgemmArgs, i: number, k0: number, k1: number, j0: number, j1: number): void {
  const { alpha, a, lda, b, ldb, c, ldc } = s;
  const ci = i * ldc;
  const ai = i * lda;
  for (let p = k0; p < k1; p++) {
    const x = alpha * a[ai + p]!;
    const bp = p * ldb;
    for (let j = j0; j < j1; j++) c[ci + j] = c[ci + j]! + x * b[bp + j]!;
  }
}
