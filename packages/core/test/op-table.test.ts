// The op table's facts hold together: every layer reads them (docs/adding-an-op.md), so a wrong
// one would be wrong everywhere at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allOps, EXTENSION_OP_MIN, OP_ALTERNATIVES, opInfo, UPSTREAM_OP_MAX } from '@vaccel/core';

test('loads, unloads and fallbacks point at ops that fit them', () => {
  for (const info of allOps()) {
    const at = `${info.name} (${info.op})`;
    if (info.loads || info.unloads !== undefined)
      assert.notEqual(info.resourceArg, undefined, `${at}: a load or unload names its model resource`);
    if (info.unloads !== undefined) {
      const load = opInfo(info.unloads);
      assert.ok(load?.loads, `${at} unloads ${info.unloads}, which loads nothing`);
      assert.equal(load.resourceArg, info.resourceArg, `${at}: its load keeps the id in the same arg`);
    }
    if (info.fallback !== undefined) {
      const upstream = opInfo(info.fallback);
      assert.ok(info.extension, `${at}: only our extensions fall back`);
      assert.ok(
        upstream && !upstream.extension && upstream.upstreamServed,
        `${at}: falls back to a served upstream op`,
      );
      assert.equal(upstream.image, info.image, `${at}: same kind of input as its fallback`);
    }
    if (info.upstreamServed || info.upstreamRpc)
      assert.ok(info.op < UPSTREAM_OP_MAX, `${at}: upstream ops only`);
    if (info.image) assert.equal(info.cost, 'compute', `${at}: decoding an image is compute`);
    assert.equal(info.extension, info.op >= EXTENSION_OP_MIN);
  }
  // The ENOTSUP alternatives are the table's.
  assert.deepEqual(
    Object.keys(OP_ALTERNATIVES).map(Number).sort(),
    allOps()
      .filter((info) => info.alternative)
      .map((info) => info.op)
      .sort(),
  );
});
