import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { allOps, OpType, opByName, opInfo, opName, UPSTREAM_OP_MAX } from '@vaccel/core';

suite('op table', () => {
  // vAccel 0.8 op.h order (docs/protocol.md §4): the wire depends on these numbers.
  // biome-ignore format: a table reads better aligned
  const upstream = [
    'noop', 'exec', 'exec_with_resource', 'image_classify', 'image_detect', 'image_segment', 'image_pose',
    'image_depth', 'tf_model_load', 'tf_model_unload', 'tf_model_run', 'tflite_model_load',
    'tflite_model_unload', 'tflite_model_run', 'torch_model_load', 'torch_model_run', 'torch_sgemm',
    'blas_sgemm', 'fpga_arraycopy', 'fpga_mmult', 'fpga_parallel', 'fpga_vectoradd', 'minmax', 'opencv',
  ];

  test('upstream ops 0–23 have upstream numbers and names', () => {
    assert.equal(upstream.length, UPSTREAM_OP_MAX);
    upstream.forEach((name, op) => {
      assert.equal(opName(op), name);
      assert.equal(opByName(name), op);
      assert.equal(opInfo(op)?.extension, false);
    });
    assert.equal(OpType.BlasSgemm, 17);
    assert.equal(OpType.ImageClassify, 3);
  });

  test('extensions live at 64 and up, never in the upstream range', () => {
    const extensions = allOps().filter((info) => info.extension);
    assert.ok(extensions.length >= 6);
    for (const info of extensions) assert.ok(info.op >= 64, `${info.name} = ${info.op}`);
    assert.equal(OpType.AesEncrypt, 64);
    assert.equal(OpType.AesDecrypt, 65);
  });

  test('unknown numbers have no info and a readable name', () => {
    assert.equal(opInfo(24), undefined);
    assert.equal(opName(999), 'op#999');
    assert.equal(opByName('nope'), undefined);
  });
});
