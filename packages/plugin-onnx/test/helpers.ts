import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository's example photos. */
export const photo = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(fileURLToPath(new URL(`../../../examples/images/${name}`, import.meta.url))));

/** The shared ImageNet model (../shared beside the repository), or undefined when absent. */
export const IMAGENET_DIR = fileURLToPath(
  new URL('../../../../shared/models/darknet-tiny-imagenet/', import.meta.url),
);
export const imagenetSkip = existsSync(IMAGENET_DIR)
  ? false
  : `the shared ImageNet model is not at ${IMAGENET_DIR} (shared/ must sit beside the repository)`;
