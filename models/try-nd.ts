import { readFileSync, writeFileSync } from 'node:fs';
import { Vaccel } from '@vaccel/core';
import { onnxPlugin } from '@vaccel/plugin-onnx';

const variants: Record<string, object> = {
  rgb255: { color: 'RGB', scale: 1 / 255 },
  bgrMeanStd: { color: 'BGR', scale: 1, mean: [103.53, 116.28, 123.675], std: [57.375, 57.12, 58.395] },
  rgbMeanStd: { color: 'RGB', scale: 1, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
};
for (const [name, v] of Object.entries(variants)) {
  const d = JSON.parse(readFileSync('packages/plugin-onnx/models/nanodet-coco/model.json', 'utf8'));
  Object.assign(d.input, v);
  writeFileSync('/tmp/nd/model.json', JSON.stringify(d));
  await using vaccel = await Vaccel.open({
    plugins: [onnxPlugin({ threads: 2, visionModels: { detect: '/tmp/nd' } })],
  });
  await using s = await vaccel.createSession();
  for (const f of ['dog', 'person']) {
    const r = await s.imageDetect(new Uint8Array(readFileSync(`examples/images/${f}.jpg`)), {
      minScore: 0.2,
    });
    console.log(name, f, r.result.map((x) => `${x.label} ${x.score.toFixed(2)}`).join(', '));
  }
}
