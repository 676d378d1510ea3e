import { readFileSync, writeFileSync } from 'node:fs';
import { Vaccel } from '@vaccel/core';
import { onnxPlugin } from '@vaccel/plugin-onnx';

await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
await using s = await vaccel.createSession();
for (const f of ['dog', 'person', 'horses']) {
  const img = new Uint8Array(readFileSync(`examples/images/${f}.jpg`));
  const d = await s.imageDetect(img, { annotate: true });
  console.log(
    f,
    d.result.map(
      (x) =>
        `${x.label} ${x.score.toFixed(2)} ${Math.round(x.box.x)},${Math.round(x.box.y)},${Math.round(x.box.width)},${Math.round(x.box.height)}`,
    ),
  );
  writeFileSync(`/tmp/scratch/${f}-det.jpg`, d.annotated!);
  const t = performance.now();
  for (let i = 0; i < 10; i++) await s.imageDetect(img);
  console.log('detect ms', ((performance.now() - t) / 10).toFixed(1));
}
const p = readFileSync('examples/images/person.jpg');
const pose = await s.imagePose(new Uint8Array(p), { annotate: true });
console.log(
  pose.result.score,
  pose.result.keypoints
    .map((k) => `${k.name}:${Math.round(k.x)},${Math.round(k.y)},${k.score.toFixed(2)}`)
    .join(' '),
);
writeFileSync('/tmp/scratch/person-pose.jpg', pose.annotated!);
const seg = await s.imageSegment(new Uint8Array(p), { annotate: true });
console.log(
  seg.result.label,
  seg.result.coverage,
  seg.result.width,
  seg.result.height,
  seg.result.mask.length,
);
writeFileSync('/tmp/scratch/person-seg.jpg', seg.annotated!);
