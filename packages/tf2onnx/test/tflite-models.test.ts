/**
 * MediaPipe's packaged TFLite models (float16 weights through DEQUANTIZE, the custom
 * Convolution2DTransposeBias) converted end to end: on real photos, ONNX Runtime's outputs equal
 * LiteRT.js's within 2e-4 relative to the output's magnitude (max abs error reported).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { convertTflite, parseTflite } from '../src/tflite/index.js';
import { maxAbsError, runBoth } from './tflite-builder.js';

const require = createRequire(import.meta.url);
const images = join(dirname(fileURLToPath(import.meta.url)), '../../../examples/images');
const packaged = (pkg: string, file: string) =>
  join(dirname(require.resolve(`@mediapipe/${pkg}/package.json`)), file);

/** An RGB photo resized to h×w, NHWC float32 scaled to [lo, hi]. */
async function photo(file: string, h: number, w: number, lo: number, hi: number): Promise<Float32Array> {
  const { data } = await sharp(join(images, file))
    .removeAlpha()
    .resize(w, h, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Float32Array.from(data, (v) => lo + (v / 255) * (hi - lo));
}

const models = [
  { pkg: 'selfie_segmentation', file: 'selfie_segmentation.tflite', range: [0, 1] },
  { pkg: 'selfie_segmentation', file: 'selfie_segmentation_landscape.tflite', range: [0, 1] },
  { pkg: 'face_detection', file: 'face_detection_short_range.tflite', range: [-1, 1] },
  { pkg: 'face_detection', file: 'face_detection_full_range.tflite', range: [-1, 1] },
] as const;

describe('MediaPipe TFLite models against LiteRT.js', () => {
  for (const m of models) {
    for (const image of ['person.jpg', 'horses.jpg']) {
      it(`${m.file} on ${image}`, async (t) => {
        const bytes = new Uint8Array(readFileSync(packaged(m.pkg, m.file)));
        const model = parseTflite(bytes);
        const [, h, w, c] = model.tensors[model.inputs[0]!]!.shape;
        assert.equal(c, 3);
        const input = await photo(image, h!, w!, m.range[0], m.range[1]);
        const { reference, ours, oursShapes, shapes } = await runBoth(bytes, [input]);
        assert.equal(ours.length, model.outputs.length);
        assert.deepEqual(oursShapes, shapes);
        ours.forEach((out, k) => {
          const ref = reference[k]!;
          const scale = Math.max(1, ...Array.from(ref, Math.abs));
          const error = maxAbsError(out, ref);
          t.diagnostic(
            `${m.file} ${image} output ${k} [${shapes[k]}]: max abs error ${error.toExponential(2)} (max |ref| ${scale.toFixed(2)})`,
          );
          assert.ok(error <= 2e-4 * scale, `output ${k}: max abs error ${error}`);
          // The comparison is not between two constant outputs.
          assert.ok(Math.max(...ref) - Math.min(...ref) > 1e-3, `output ${k} is flat`);
        });
        if (m.pkg === 'selfie_segmentation' && image === 'person.jpg') {
          // A person covers a fair part of the photo: the mask says so.
          const mask = ours[0]!;
          const person = mask.filter((v) => v > 0.5).length / mask.length;
          assert.ok(person > 0.05 && person < 0.95, `person fraction ${person}`);
        }
      });
    }
  }

  it('keeps the declared NHWC inputs and outputs', () => {
    const bytes = new Uint8Array(readFileSync(packaged('selfie_segmentation', 'selfie_segmentation.tflite')));
    const { inputs, outputs } = convertTflite(bytes);
    assert.deepEqual(inputs, [{ name: 'input_1', shape: [1, 256, 256, 3], dtype: 'float32' }]);
    assert.deepEqual(outputs, [{ name: 'activation_10', shape: [1, 256, 256, 1], dtype: 'float32' }]);
  });
});
