import { writeFile } from 'node:fs/promises';
import type { Detection, Pose, Segmentation, VisionCallOptions, VisionResult } from '@vaccel/core';
import { VaccelError } from '@vaccel/core';
import { parse, printJson, println, UsageError } from '../io.js';
import { openRuntime } from '../runtime.js';
import { openModel, provided, readImage } from './classify.js';
import { COMMON_HELP, type Command } from './command.js';

const OPTIONS_HELP = `  --out FILE       write the image with the result drawn on it (JPEG)
  --model PATH     a model folder (or its model.json: task, input, output decoder, labels)
  --min-score S    report only results scoring at least S (0–1)`;

function score(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new UsageError(`--min-score must be a number in 0–1, got ${value}`);
  return n;
}

const pct = (s: number) => `${(s * 100).toFixed(1).padStart(5)}%`;

function printDetections(io: Parameters<Command['run']>[1], found: Detection[]) {
  if (found.length === 0) println(io, 'no objects found');
  for (const d of found) {
    const { x, y, width, height } = d.box;
    println(
      io,
      `${pct(d.score)}  ${d.label.padEnd(14)} x=${Math.round(x)} y=${Math.round(y)} w=${Math.round(width)} h=${Math.round(height)}`,
    );
  }
}

function printPose(io: Parameters<Command['run']>[1], pose: Pose) {
  println(io, `pose score ${pct(pose.score).trim()}`);
  for (const k of pose.keypoints)
    println(io, `${pct(k.score)}  ${k.name.padEnd(15)} x=${Math.round(k.x)} y=${Math.round(k.y)}`);
}

function printSegmentation(io: Parameters<Command['run']>[1], s: Segmentation) {
  println(io, `${s.label}: ${(s.coverage * 100).toFixed(1)}% of the ${s.width}×${s.height} image`);
}

type Task = 'detect' | 'pose' | 'segment';

const about: Record<Task, { summary: string; what: string; text: string }> = {
  detect: {
    summary: 'detect objects (boxes, COCO labels, scores); --out draws them',
    what: 'object detection',
    text: `Detects objects in an image and prints each one's label, score and box (pixels of the image).
Embedded, the ONNX plugin runs CenterNet (80 COCO classes); with VACCEL_RPC_ADDRESS set, the agent.
The shipped NanoDet (faster, less accurate) stays selectable: --model packages/plugin-onnx/models/nanodet-coco
or VACCEL_ONNX_DETECT_MODEL.`,
  },
  pose: {
    summary: "estimate a person's pose (17 keypoints); --out draws the skeleton",
    what: 'pose estimation',
    text: `Estimates the pose of the main person in an image: 17 named keypoints with scores, in pixels.
Embedded, the ONNX plugin runs MoveNet Lightning; with VACCEL_RPC_ADDRESS set, the agent.`,
  },
  segment: {
    summary: 'segment the person from the background; --out tints the mask',
    what: 'image segmentation',
    text: `Segments an image: a mask of the model's class (a person, for the shipped MediaPipe selfie
model), printed as the share of the image it covers; --json includes the mask as base64.`,
  },
};

function visionCommand(task: Task): Command {
  const { summary, what, text } = about[task];
  return {
    name: task,
    summary,
    help: `Usage: vaccel ${task} IMAGE [--out FILE] [options]

${text}
An upstream vAccel agent has no typed ${what}: its image_${task} runs instead, and the text it
answers is printed (no ${task === 'detect' ? 'boxes' : task === 'pose' ? 'keypoints' : 'mask'}, no --out image).

${OPTIONS_HELP}

${COMMON_HELP}`,
    async run(args, io) {
      const { values, positionals } = parse(
        args,
        { out: { type: 'string' }, model: { type: 'string' }, 'min-score': { type: 'string' } },
        true,
      );
      if (positionals.length !== 1) throw new UsageError(`${task} takes exactly one IMAGE`);
      const path = positionals[0]!;
      const minScore = score(values['min-score']);
      const image = await readImage(path);
      await using vaccel = await openRuntime(io, values);
      await using session = await vaccel.createSession();
      await using model = values.model === undefined ? undefined : await openModel(vaccel, values.model);
      if (model) session.registerResource(model);
      const options: VisionCallOptions = {
        annotate: values.out !== undefined,
        ...(minScore !== undefined ? { minScore } : {}),
        ...(model ? { model } : {}),
      };
      const started = performance.now();
      const call = (): Promise<VisionResult<Detection[] | Pose | Segmentation>> =>
        task === 'detect'
          ? session.imageDetect(image, options)
          : task === 'pose'
            ? session.imagePose(image, options)
            : session.imageSegment(image, options);
      const out = await provided(vaccel, what, call);
      const ms = performance.now() - started;
      if (out.upstream) {
        // An upstream agent: no typed result, only its text (and no image to write).
        if (values.json) {
          printJson(io, { image: path, ms, upstream: out.upstream });
          return 0;
        }
        println(io, `upstream agent, ${out.upstream.op}: ${out.upstream.text || '(no text)'}`);
        println(
          io,
          values.out
            ? `(${ms.toFixed(1)} ms; ${values.out} not written: an upstream agent returns no image)`
            : `(${ms.toFixed(1)} ms)`,
        );
        return 0;
      }
      if (values.out !== undefined) {
        if (!out.annotated)
          throw new VaccelError('EPROTO', `the plugin returned no annotated image for ${values.out}`);
        try {
          await writeFile(values.out, out.annotated);
        } catch (cause) {
          throw new VaccelError('EIO', `cannot write ${values.out}: ${(cause as Error).message}`, { cause });
        }
      }
      if (values.json) {
        const result =
          task === 'segment'
            ? {
                ...(out.result as Segmentation),
                mask: Buffer.from((out.result as Segmentation).mask).toString('base64'),
              }
            : out.result;
        printJson(io, { image: path, ms, ...(values.out ? { out: values.out } : {}), result });
        return 0;
      }
      if (task === 'detect') printDetections(io, out.result as Detection[]);
      else if (task === 'pose') printPose(io, out.result as Pose);
      else printSegmentation(io, out.result as Segmentation);
      println(io, values.out ? `wrote ${values.out} (${ms.toFixed(1)} ms)` : `(${ms.toFixed(1)} ms)`);
      return 0;
    },
  };
}

export const detectCommand = visionCommand('detect');
export const poseCommand = visionCommand('pose');
export const segmentCommand = visionCommand('segment');
