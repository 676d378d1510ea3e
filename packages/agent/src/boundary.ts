/**
 * What a guest is told when its call fails: the status of the error (remote/errors.ts maps the
 * class and adds the vAccel detail) with every host path taken out of the message. Plugins and
 * runtimes name files freely in their errors (a default model's directory, ONNX Runtime's model
 * path, a worker's module); those help whoever runs the agent, who still sees them in the agent's
 * log, but they tell a guest about the host's layout. This is the only place statuses for guests
 * are made, so the rewrite happens once, here.
 * @module
 */
import { statusFromError } from '@vaccel/protocol';
import type { StatusReply } from '@vaccel/ttrpc';

/** What a host path is replaced with. */
export const HOST_PATH = '<host path>';

/**
 * Absolute paths: a `/` that does not continue a word, a number, a URL or another path, then at
 * least one name. `unix:///run/a.sock` and `svc/Method` are left alone; `/tmp/x` and
 * `(/home/me/model.onnx)` are not. Names stop at whitespace, quotes, brackets, `,`, `;` and `:`.
 */
const ABSOLUTE_PATH = /(?<![\w.~:/-])\/[^\s/'"`()[\]<>,;:]+(?:\/[^\s/'"`()[\]<>,;:]*)*/g;
/** `file:` URLs name host files too. */
const FILE_URL = /\bfile:\/\/[^\s'"`()<>,;]*/g;

/** `message` with every host path replaced by {@link HOST_PATH}. */
export function scrubHostPaths(message: string): string {
  if (!message.includes('/')) return message; // the common case costs one scan
  return message.replace(FILE_URL, HOST_PATH).replace(ABSOLUTE_PATH, HOST_PATH);
}

/** The status a guest gets for `error`: its class, the vAccel detail, a message without host paths. */
export function guestStatus(error: unknown): StatusReply {
  const status = statusFromError(error);
  return { ...status, message: scrubHostPaths(status.message) };
}
