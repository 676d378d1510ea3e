/**
 * The typed image results that stand for an upstream agent's text answers (the RPC plugin's
 * fallback, docs/protocol.md §8.1): encoded into the typed op's write args, parsed back marked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Args,
  encodeUpstreamClassification,
  encodeUpstreamVision,
  parseClassification,
  parseVision,
  type Segmentation,
  type VisionTask,
} from '@vaccel/core';

test('an upstream classification is one entry marked upstream, with no index or score', () => {
  const [only, ...rest] = parseClassification(encodeUpstreamClassification('tabby cat'));
  assert.deepEqual(rest, []);
  assert.equal(only!.upstream, true);
  assert.equal(only!.label, 'tabby cat');
  assert.equal(only!.index, -1);
  assert.ok(Number.isNaN(only!.score));
  // Ordinary results carry no mark, and a score must still be a number.
  const ours = parseClassification(new TextEncoder().encode('[{"label":"a","index":1,"score":0.5}]'));
  assert.equal(ours[0]!.upstream, undefined);
  assert.throws(
    () => parseClassification(new TextEncoder().encode('[{"label":"a","index":1,"score":null}]')),
    { code: 'EPROTO' },
  );
});

const empty: Record<VisionTask, unknown> = {
  detect: [],
  pose: { score: 0, keypoints: [], skeleton: [] },
  segment: { label: '', width: 0, height: 0, coverage: 0, mask: new Uint8Array(0) },
};

for (const task of ['detect', 'pose', 'segment'] as const) {
  test(`an upstream ${task} answer is its text with an empty result and no image`, () => {
    const write = [Args.raw(encodeUpstreamVision({ op: `image_${task}`, text: 'out.jpg' })), Args.raw()];
    if (task === 'segment') write.push(Args.raw());
    const out = parseVision(task, write);
    assert.deepEqual(out.upstream, { op: `image_${task}`, text: 'out.jpg' });
    assert.deepEqual(out.result, empty[task]);
    assert.equal(out.annotated, undefined);
  });
}

test('a malformed upstream answer is EPROTO; typed results are not taken for one', () => {
  const bad = Args.raw(new TextEncoder().encode('{"upstream":{"op":3}}'));
  assert.throws(() => parseVision('detect', [bad, Args.raw()]), { code: 'EPROTO' });
  const segment = { label: 'person', width: 1, height: 1, coverage: 1 };
  const out = parseVision<Segmentation>('segment', [
    Args.raw(new TextEncoder().encode(JSON.stringify(segment))),
    Args.raw(),
    Args.raw(new Uint8Array([255])),
  ]);
  assert.equal(out.upstream, undefined);
  assert.deepEqual([...out.result.mask], [255]);
});
