import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import { BLOCK_FLOPS, OrtSgemm, sgemmChannel } from '../src/index.js';

const settings = { executionProviders: ['cpu'], intraOpThreads: 1 };

/** A square SGEMM of `blocks` row blocks; C starts as NaN so rows never computed stay visible. */
function problem(blocks: number) {
  const k = 1024;
  const n = 1024;
  const rows = Math.floor(BLOCK_FLOPS / (2 * n * k));
  const m = rows * blocks;
  const a = new Float32Array(m * k).fill(1);
  const b = new Float32Array(k * n).fill(2);
  const c = new Float32Array(m * n).fill(Number.NaN);
  return { rows, args: { m, n, k, alpha: 1, beta: 0, a, b, c, lda: k, ldb: n, ldc: n } };
}

test('an abort during a block stops the SGEMM before the next block (rows after it are never computed)', async () => {
  const sgemm = new OrtSgemm(settings);
  const { rows, args } = problem(3);
  const controller = new AbortController();
  const seen: number[] = [];
  // The event "block 0 is under way": abort then, whatever the machine's speed.
  const onBlock = (message: unknown) => {
    const { block } = message as { block: number };
    seen.push(block);
    if (block === 0) controller.abort(new Error('caller gave up'));
  };
  subscribe(sgemmChannel.name, onBlock);
  const debug: string[] = [];
  const logger = { debug: (_: unknown, msg: string) => debug.push(msg) } as never;
  try {
    await assert.rejects(sgemm.run(args as never, { signal: controller.signal, logger }), /caller gave up/);
  } finally {
    unsubscribe(sgemmChannel.name, onBlock);
    await sgemm.close();
  }
  assert.deepEqual(seen, [0], 'no block started after the abort');
  assert.ok(
    debug.some((m) => /^sgemm stopped early/.test(m)),
    debug.join('; '),
  );
  assert.equal(args.c[0], 2 * args.k, 'the first block was written');
  assert.ok(Number.isNaN(args.c[rows * args.n]), 'the second block never ran');
});

test('without an abort every block runs and all of C is computed', async () => {
  const sgemm = new OrtSgemm(settings);
  const { args } = problem(2);
  const seen: number[] = [];
  const onBlock = (message: unknown) => seen.push((message as { block: number }).block);
  subscribe(sgemmChannel.name, onBlock);
  try {
    await sgemm.run(args as never, { signal: new AbortController().signal });
  } finally {
    unsubscribe(sgemmChannel.name, onBlock);
    await sgemm.close();
  }
  assert.deepEqual(seen, [0, 1]);
  assert.ok(
    args.c.every((value) => value === 2 * args.k),
    'every element is the sum of k products 1·2',
  );
});
