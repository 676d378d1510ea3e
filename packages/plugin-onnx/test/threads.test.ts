/**
 * Compute threads (issue 22): the host's own models and big SGEMMs run off the calling thread,
 * give the same answers as runs on it, stop SGEMMs at a row block on abort, and leave the
 * calling thread's event loop free while they run (shown with a held row block, never a clock).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { suite, test } from 'node:test';
import { type SgemmArgs, tensor, Vaccel, VaccelError } from '@vaccel/core';
import { sgemmKernel } from '@vaccel/core/plugins';
import {
  BLOCK_FLOPS,
  DataType,
  modelBytes,
  node,
  onnxPlugin,
  sgemmChannel,
  valueInfo,
} from '@vaccel/plugin-onnx';
import { ComputeThreads } from '../src/threads/pool.js';
import { photo } from './helpers.js';

const settings = { executionProviders: ['cpu'], intraOpThreads: 1 };
/** A safety net only: a thread that never answers hangs a test, and this ends it as a failure. */
const HANG = { timeout: 120_000 };

/** A strided SGEMM (lda, ldb, ldc wider than the rows) of `blocks` row blocks, with beta ≠ 0. */
function strided(blocks: number): SgemmArgs {
  const n = 512;
  const k = 512;
  const m = Math.floor(BLOCK_FLOPS / (2 * n * k)) * blocks;
  const [lda, ldb, ldc] = [k + 3, n + 5, n + 7];
  const fill = (length: number, seed: number) =>
    Float32Array.from({ length }, (_, i) => ((i * seed) % 13) / 13 - 0.5);
  return {
    m,
    n,
    k,
    alpha: 0.5,
    beta: 2,
    a: fill(m * lda, 7),
    lda,
    b: fill(k * ldb, 11),
    ldb,
    c: fill(m * ldc, 5),
    ldc,
  };
}

const copyOf = (s: SgemmArgs): SgemmArgs => ({ ...s, c: s.c.slice() });

suite('compute threads', () => {
  test('an SGEMM on a thread equals the reference kernel, strides and beta included', HANG, async () => {
    const threads = new ComputeThreads(2, settings);
    try {
      const s = strided(2);
      const expected = copyOf(s);
      sgemmKernel(expected);
      await threads.sgemm(s);
      let worst = 0;
      for (let i = 0; i < s.c.length; i++) worst = Math.max(worst, Math.abs(s.c[i]! - expected.c[i]!));
      assert.ok(worst < 1e-3, `largest difference ${worst}`);
    } finally {
      await threads.close();
    }
  });

  test('more SGEMMs in turns than a thread keeps operands for all come out right', HANG, async () => {
    // One thread, six SGEMMs of two blocks each, their blocks in turns: the thread keeps B for
    // four at most, so some blocks find their B dropped and get it sent again.
    const threads = new ComputeThreads(1, settings);
    try {
      const problems = Array.from({ length: 6 }, () => strided(2));
      const expected = problems.map((s) => {
        const copy = copyOf(s);
        sgemmKernel(copy);
        return copy.c;
      });
      await Promise.all(problems.map((s) => threads.sgemm(s)));
      for (const [i, s] of problems.entries()) {
        let worst = 0;
        for (let j = 0; j < s.c.length; j++) worst = Math.max(worst, Math.abs(s.c[j]! - expected[i]![j]!));
        assert.ok(worst < 1e-3, `problem ${i}: largest difference ${worst}`);
      }
    } finally {
      await threads.close();
    }
  });

  test('an abort at block 0 stops the SGEMM before block 1 and leaves C as it was', HANG, async () => {
    const threads = new ComputeThreads(1, settings);
    const s = strided(3);
    const before = s.c.slice();
    const controller = new AbortController();
    const seen: number[] = [];
    const onBlock = (message: unknown) => {
      const { block } = message as { block: number };
      seen.push(block);
      if (block === 0) controller.abort(new Error('caller gave up'));
    };
    subscribe(sgemmChannel.name, onBlock);
    try {
      await assert.rejects(threads.sgemm(s, { signal: controller.signal }), /caller gave up/);
      // The thread is free again once it has stopped: a next job runs, and no block 1 was seen.
      const after = strided(1);
      await threads.sgemm(after);
    } finally {
      unsubscribe(sgemmChannel.name, onBlock);
      await threads.close();
    }
    assert.deepEqual(seen, [0, 0], 'the aborted job saw block 0 only; the next job its own block 0');
    assert.deepEqual(s.c, before);
  });

  test('while a thread holds an SGEMM mid-run, the calling thread serves other ops', HANG, async () => {
    await using vaccel = await Vaccel.open({
      plugins: ['noop', onnxPlugin({ threads: 1, computeThreads: 2 })],
    });
    await using session = await vaccel.createSession();
    const s = strided(2);
    const events: string[] = [];
    let served: Promise<void> | undefined;
    const onBlock = (message: unknown) => {
      const { block, hold } = message as { block: number; hold?: () => () => void };
      events.push(`block ${block}`);
      if (block !== 0) return;
      assert.equal(typeof hold, 'function', 'the SGEMM runs on a compute thread, which can be held');
      const release = hold!();
      // Block 0 cannot start until released: a noop, and a classify on the other thread, complete
      // meanwhile.
      served = (async () => {
        await session.noop();
        events.push('noop');
        await session.imageClassify(photo('cat.jpg'), { topK: 1 });
        events.push('classify');
      })().finally(release);
    };
    subscribe(sgemmChannel.name, onBlock);
    try {
      await session.sgemm(s);
      await served;
    } finally {
      unsubscribe(sgemmChannel.name, onBlock);
    }
    assert.deepEqual(events, ['block 0', 'noop', 'classify', 'block 1']);
  });

  test('a shipped model on compute threads classifies as it does on the calling thread', HANG, async () => {
    const results = [];
    for (const computeThreads of [0, 2]) {
      await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1, computeThreads })] });
      await using session = await vaccel.createSession();
      // Two at once: both threads open the model; each answers for its own photo.
      results.push(
        await Promise.all(
          ['cat.jpg', 'eagle.jpg'].map((name) => session.imageClassify(photo(name), { topK: 3 })),
        ),
      );
    }
    assert.deepEqual(results[1], results[0]);
  });

  test(
    'a model run alone on the pool takes the wide session (every core); overlapping runs keep their share',
    HANG,
    async () => {
      const n = 64;
      const matmul = modelBytes({
        name: 'matmul',
        nodes: [node('MatMul', ['a', 'b'], ['c'])],
        inputs: [valueInfo('a', DataType.FLOAT, [n, n]), valueInfo('b', DataType.FLOAT, [n, n])],
        outputs: [valueInfo('c', DataType.FLOAT, [n, n])],
      });
      const inputs = () => ({
        a: tensor(
          'float32',
          [n, n],
          Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3),
        ),
        b: tensor(
          'float32',
          [n, n],
          Float32Array.from({ length: n * n }, (_, i) => (i % 5) - 2),
        ),
      });
      const threads = new ComputeThreads(2, settings, undefined, undefined, 2);
      try {
        await threads.load('m', matmul, 'matmul');
        // Alone: nothing else running or waiting.
        const alone = await threads.run('m', inputs(), ['c'], 'matmul');
        assert.deepEqual(threads.runs, { wide: 1, narrow: 0 });
        // Three at once: the first starts alone (wide); the second starts beside it and the third
        // waits for a thread, then starts beside one of them: both with their share.
        const together = await Promise.all([1, 2, 3].map(() => threads.run('m', inputs(), ['c'], 'matmul')));
        assert.deepEqual(threads.runs, { wide: 2, narrow: 2 });
        for (const out of together) assert.deepEqual(out.c!.data, alone.c!.data);
        // Alone again, after the others: wide again.
        await threads.run('m', inputs(), ['c'], 'matmul');
        assert.deepEqual(threads.runs, { wide: 3, narrow: 2 });
        // A run that fails frees the thread's sessions of the model, both kinds: the next lone run
        // opens them again and succeeds.
        const bad = { a: tensor('float32', [1, 3], new Float32Array(3)), b: inputs().b };
        await assert.rejects(threads.run('m', bad, ['c'], 'matmul'));
        assert.deepEqual((await threads.run('m', inputs(), ['c'], 'matmul')).c!.data, alone.c!.data);
        assert.deepEqual(threads.runs, { wide: 5, narrow: 2 });
        await threads.release('m');
        await assert.rejects(threads.run('m', inputs(), ['c'], 'matmul'), /not loaded/);
      } finally {
        await threads.close();
      }
      // Not above the settings' threads: off.
      const narrow = new ComputeThreads(1, settings, undefined, undefined, 1);
      try {
        await narrow.load('m', matmul, 'matmul');
        await narrow.run('m', inputs(), ['c'], 'matmul');
        assert.deepEqual(narrow.runs, { wide: 0, narrow: 1 });
      } finally {
        await narrow.close();
      }
    },
  );

  test('a bad count of compute threads or wide threads is a clear EINVAL', () => {
    assert.throws(
      () => onnxPlugin({ env: { VACCEL_ONNX_COMPUTE_THREADS: 'two' } }),
      (e: unknown) =>
        e instanceof VaccelError && e.code === 'EINVAL' && /VACCEL_ONNX_COMPUTE_THREADS/.test(e.message),
    );
    assert.throws(
      () => onnxPlugin({ env: { VACCEL_ONNX_WIDE_THREADS: 'all' } }),
      (e: unknown) =>
        e instanceof VaccelError && e.code === 'EINVAL' && /VACCEL_ONNX_WIDE_THREADS/.test(e.message),
    );
    assert.throws(() => onnxPlugin({ wideThreads: -1 }), /wideThreads must be an integer ≥ 0, got -1/);
  });

  test("compute threads run at the nice value asked for; the caller's thread keeps its own", {
    ...HANG,
    skip: existsSync('/proc/self/task') ? false : 'needs Linux /proc',
  }, async () => {
    /** Nice values of this process's threads (field 19 of /proc/self/task/<tid>/stat). */
    const niceValues = () =>
      readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
      });
    const threads = new ComputeThreads(1, settings, 7);
    try {
      await threads.sgemm(strided(1));
      const values = niceValues();
      assert.ok(
        values.some((t) => t.nice === 7),
        JSON.stringify(values),
      );
      assert.equal(values.find((t) => t.tid === process.pid)?.nice, 0, "the caller's thread is untouched");
    } finally {
      await threads.close();
    }
  });
});
