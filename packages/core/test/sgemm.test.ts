import assert from 'node:assert/strict';
import { after, before, suite, test } from 'node:test';
import { type Session, type SgemmArgs, Vaccel, VaccelError } from '@vaccel/core';
import { sgemmJsPlugin } from '@vaccel/core/plugins';
import fc from 'fast-check';

/** Naive triple loop in float64: the reference. Also returns Σ|terms| per element, the scale for the relative bound. */
function naive(s: SgemmArgs): { c: Float64Array; scale: Float64Array } {
  const c = new Float64Array(s.m * s.n);
  const scale = new Float64Array(s.m * s.n);
  for (let i = 0; i < s.m; i++) {
    for (let j = 0; j < s.n; j++) {
      const c0 = s.beta === 0 ? 0 : s.beta * s.c[i * s.ldc + j]!;
      let sum = 0;
      let abs = Math.abs(c0);
      for (let p = 0; p < s.k; p++) {
        const term = s.alpha * s.a[i * s.lda + p]! * s.b[p * s.ldb + j]!;
        sum += term;
        abs += Math.abs(term);
      }
      c[i * s.n + j] = c0 + sum;
      scale[i * s.n + j] = abs;
    }
  }
  return { c, scale };
}

const small = fc.integer({ min: 1, max: 40 });
const float = fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true });

/** Random SGEMM problems: non-square shapes, padded leading dimensions, alpha/beta. */
const problems = fc
  .record({
    m: small,
    n: small,
    k: small,
    padA: fc.nat(3),
    padB: fc.nat(3),
    padC: fc.nat(3),
    alpha: float,
    beta: fc.oneof(fc.constant(0), fc.constant(1), float),
    seed: fc.nat(),
  })
  .map(({ m, n, k, padA, padB, padC, alpha, beta, seed }) => {
    let x = seed + 1;
    const rand = (): number => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return (x / 2 ** 31) * 2 - 1;
    };
    const lda = k + padA;
    const ldb = n + padB;
    const ldc = n + padC;
    const fill = (len: number): Float32Array => Float32Array.from({ length: len }, rand);
    return { m, n, k, alpha, beta, lda, ldb, ldc, a: fill(m * lda), b: fill(k * ldb), c: fill(m * ldc) };
  });

function assertClose(
  got: Float32Array,
  ldc: number,
  ref: { c: Float64Array; scale: Float64Array },
  m: number,
  n: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const want = ref.c[i * n + j]!;
      const diff = Math.abs(got[i * ldc + j]! - want);
      // 1e-4 relative to the magnitude of the summed terms (cancellation makes |want| alone meaningless).
      assert.ok(
        diff <= 1e-4 * ref.scale[i * n + j]! + 1e-30,
        `C[${i},${j}] = ${got[i * ldc + j]} vs ${want}`,
      );
    }
  }
}

suite('sgemm-js', () => {
  let vaccel: Vaccel;
  let session: Session;
  before(async () => {
    vaccel = await Vaccel.open({ plugins: [sgemmJsPlugin()] });
    session = await vaccel.createSession();
  });
  after(() => vaccel.close());

  test('matches the naive triple loop within 1e-4 relative (random shapes, ld padding, alpha, beta)', async () => {
    await fc.assert(
      fc.asyncProperty(problems, async (p) => {
        const ref = naive(p);
        const untouched = p.c.slice();
        const c = await session.sgemm({ ...p, c: p.c });
        assert.equal(c, p.c, 'C is updated in place and returned');
        assertClose(c, p.ldc, ref, p.m, p.n);
        // Padding columns of C are never written.
        for (let i = 0; i < p.m; i++)
          for (let j = p.n; j < p.ldc; j++) assert.equal(c[i * p.ldc + j], untouched[i * p.ldc + j]);
      }),
      { numRuns: 200 },
    );
  });

  test('large problems (worker threads) match the inline kernel', async () => {
    const m = 150;
    const n = 170;
    const k = 130;
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    const c0 = Float32Array.from({ length: m * n }, (_, i) => (i % 7) - 3);
    const c = await session.sgemm({ m, n, k, a, b, alpha: 0.5, beta: -2, c: c0.slice() });
    assertClose(c, n, naive({ m, n, k, a, b, alpha: 0.5, beta: -2, c: c0, lda: k, ldb: n, ldc: n }), m, n);
  });

  test('defaults: alpha 1, beta 0, C allocated; beta 0 ignores NaN in C', async () => {
    const a = new Float32Array([1, 2, 3, 4]);
    const b = new Float32Array([5, 6, 7, 8]);
    assert.deepEqual([...(await session.sgemm({ m: 2, n: 2, k: 2, a, b }))], [19, 22, 43, 50]);
    const c = new Float32Array([Number.NaN, Number.NaN, Number.NaN, Number.NaN]);
    assert.deepEqual([...(await session.sgemm({ m: 2, n: 2, k: 2, a, b, c }))], [19, 22, 43, 50]);
    assert.deepEqual(
      [
        ...(await session.sgemm({
          m: 2,
          n: 2,
          k: 2,
          a,
          b,
          alpha: 0,
          beta: 2,
          c: new Float32Array([1, 2, 3, 4]),
        })),
      ],
      [2, 4, 6, 8],
    );
  });

  test('zero-sized dimensions are a quick return', async () => {
    assert.equal(
      (await session.sgemm({ m: 0, n: 3, k: 2, a: new Float32Array(0), b: new Float32Array(6) })).length,
      0,
    );
    const c = await session.sgemm({
      m: 2,
      n: 2,
      k: 0,
      a: new Float32Array(0),
      b: new Float32Array(0),
      beta: 0,
      c: new Float32Array([1, 1, 1, 1]),
    });
    assert.deepEqual([...c], [0, 0, 0, 0]);
  });

  const einval = (pattern: RegExp) => (error: unknown) =>
    error instanceof VaccelError && error.code === 'EINVAL' && pattern.test(error.message);

  test('shape and length mismatches are EINVAL', async () => {
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    await assert.rejects(
      session.sgemm({ m: 2, n: 2, k: 3, a: new Float32Array(5), b }),
      einval(/A has 5 elements, expected 2×3/),
    );
    await assert.rejects(
      session.sgemm({ m: 2, n: 2, k: 3, a, b: new Float32Array(7) }),
      einval(/B has 7 elements/),
    );
    await assert.rejects(
      session.sgemm({ m: 2, n: 2, k: 3, a, b, c: new Float32Array(3) }),
      einval(/C has 3 elements/),
    );
    await assert.rejects(session.sgemm({ m: 2, n: 2, k: 3, a, b, lda: 2 }), einval(/lda = 2 must be ≥ 3/));
    await assert.rejects(
      session.sgemm({ m: 2, n: 2, k: 3, a, b, lda: 4 }),
      einval(/A has 6 elements, 2×3 with ld 4 needs 7/),
    );
    await assert.rejects(session.sgemm({ m: -1, n: 2, k: 3, a, b }), einval(/m = -1/));
    await assert.rejects(session.sgemm({ m: 2, n: 2, k: 3, a, b, alpha: Number.NaN }), einval(/finite/));
    await assert.rejects(
      session.sgemm({ m: 2, n: 2, k: 3, a: [1, 2] as unknown as Float32Array, b }),
      einval(/Float32Arrays/),
    );
  });

  test('an aborted call rejects with the abort reason and the plugin keeps working', async () => {
    const n = 400; // big enough for a worker thread
    const a = new Float32Array(n * n).fill(1);
    const controller = new AbortController();
    const { signal } = controller;
    // The runtime listens for the abort first, then the worker pool, just before it posts the job
    // to a worker. Aborting on the microtask after the pool's listener is after the post and before
    // any reply can be read (that takes a turn of the event loop): the worker is always mid-job.
    let listeners = 0;
    const listen = signal.addEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof listen>) => {
      listen(...args);
      if (++listeners === 2) queueMicrotask(() => controller.abort(new Error('stop')));
    }) as typeof signal.addEventListener;
    const work = session.sgemm({ m: n, n, k: n, a, b: a }, { signal });
    await assert.rejects(work, /stop/);
    assert.equal(listeners, 2, 'the pool had the job when it was aborted');
    const one = new Float32Array([1]);
    await assert.rejects(
      session.sgemm({ m: 1, n: 1, k: 1, a: one, b: one }, { signal: AbortSignal.abort(new Error('early')) }),
      /early/,
    );
    const c = await session.sgemm({
      m: 2,
      n: 2,
      k: 2,
      a: new Float32Array([1, 0, 0, 1]),
      b: new Float32Array([1, 2, 3, 4]),
    });
    assert.deepEqual([...c], [1, 2, 3, 4]);
  });
});
