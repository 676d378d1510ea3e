/**
 * Upstream's typed op RPCs other than TensorFlow's (tensorflow.ts): ImageClassification, run like
 * any op, and the TensorFlow Lite and Torch RPCs, refused with what to use instead (no plugin
 * here runs those models).
 * @module
 */
import { Args, OP_ALTERNATIVES, OpType, opName, UPSTREAM_TAG_BYTES, VaccelError } from '@vaccel/core';
import type { CallContext } from '@vaccel/ttrpc';
import type { RunOp } from './op-runner.js';
import { type AgentServiceImpl, connectionOf } from './rpc-context.js';

/** ImageClassification: image_classify with upstream's fixed-size tag buffers. */
export function imageClassificationRpc(
  opOf: WeakMap<CallContext, string>,
  runOp: RunOp,
): Pick<AgentServiceImpl, 'imageClassification'> {
  return {
    async imageClassification({ sessionId, image }, ctx) {
      opOf.set(ctx, opName(OpType.ImageClassify));
      const write = [
        Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES)),
        Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES)),
      ];
      await runOp(
        ctx,
        connectionOf(ctx).session(sessionId),
        OpType.ImageClassify,
        [Args.buffer(image)],
        write,
      );
      return { tags: write[1]!.buf };
    },
  };
}

const notSupported =
  (op: OpType, instead = OP_ALTERNATIVES[op]) =>
  async () => {
    throw new VaccelError('ENOTSUP', `the vaccel-ts agent cannot run ${opName(op)}: ${instead}`);
  };

/** TensorFlow Lite models run here through Genop; upstream's dedicated RPCs are not served yet. */
const TFLITE_VIA_GENOP =
  "this agent runs TensorFlow Lite models through Genop (tflite_model_load/run/unload with our model ops' layout), not through the TensorflowLite RPCs";

/** The TensorFlow Lite and Torch model RPCs: each fails with `ENOTSUP` naming what to use instead. */
export function unsupportedRpcs(): Pick<
  AgentServiceImpl,
  | 'tensorflowLiteModelLoad'
  | 'tensorflowLiteModelUnload'
  | 'tensorflowLiteModelRun'
  | 'torchModelLoad'
  | 'torchModelRun'
> {
  return {
    tensorflowLiteModelLoad: notSupported(OpType.TfliteModelLoad, TFLITE_VIA_GENOP),
    tensorflowLiteModelUnload: notSupported(OpType.TfliteModelUnload, TFLITE_VIA_GENOP),
    tensorflowLiteModelRun: notSupported(OpType.TfliteModelRun, TFLITE_VIA_GENOP),
    torchModelLoad: notSupported(OpType.TorchModelLoad),
    torchModelRun: notSupported(OpType.TorchModelRun),
  };
}
