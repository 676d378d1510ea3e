/**
 * Converts a TensorFlow model to ONNX off the agent's event loop: one message in (the resource's
 * blobs and the constant budget), one out (the ONNX bytes, transferred, or the error's code and
 * message). @internal
 */
import { parentPort } from 'node:worker_threads';
import type { ResourceBlob } from '@vaccel/core';
import { onnxModelOf } from './model-formats.js';

interface Request {
  blobs: ResourceBlob[];
  what: string;
  maxConstantBytes: number;
}

parentPort!.once('message', ({ blobs, what, maxConstantBytes }: Request) => {
  try {
    const converted = onnxModelOf(blobs, what, { maxConstantBytes });
    const bytes =
      converted.byteOffset === 0 && converted.byteLength === converted.buffer.byteLength
        ? converted
        : converted.slice();
    parentPort!.postMessage({ bytes }, [bytes.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort!.postMessage({
      error: { code: (error as { code?: string }).code, message: `${what}: ${(error as Error).message}` },
    });
  }
});
