/**
 * Upstream's typed op RPCs other than TensorFlow's and TensorFlow Lite's (tensorflow.ts,
 * tensorflow-lite.ts): ImageClassification, run like any op, and the Torch RPCs, refused with what
 * to use instead (no plugin here runs TorchScript).
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

/** The Torch model RPCs: each fails with `ENOTSUP` naming what to use instead. */
export function unsupportedRpcs(): Pick<AgentServiceImpl, 'torchModelLoad' | 'torchModelRun'> {
  return {
    torchModelLoad: notSupported(OpType.TorchModelLoad),
    torchModelRun: notSupported(OpType.TorchModelRun),
  };
}
