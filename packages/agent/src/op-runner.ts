/**
 * How the agent runs an op for a connection, whichever RPC carried it (genop, ImageClassification,
 * the TensorFlow RPCs): scheduled on the compute pool, admitted, its errors told in the
 * connection's resource ids.
 * @module
 */
import { type Arg, isVaccelError, type OpType, type Session, VaccelError } from '@vaccel/core';
import type { CallContext } from '@vaccel/ttrpc';
import type { Admission } from './admission.js';
import { connectionOf } from './rpc-context.js';
import type { ConnectionState } from './state.js';

/**
 * Runs an op's work now or when the compute pool has room for it (scheduler.ts): the op and its
 * args' size say which.
 */
export type Schedule = (
  ctx: CallContext,
  op: OpType,
  argBytes: number,
  run: (checkpoint?: () => Promise<void>) => Promise<void>,
) => Promise<void>;

/** Runs `op` in `session` for the connection of `ctx` (see {@link opRunner}). */
export type RunOp = (
  ctx: CallContext,
  session: Session,
  op: OpType,
  read: Arg[],
  write: Arg[],
) => Promise<void>;

/**
 * The runtime's id of a resource the connection holds by its own id `id`, registered with
 * `session` (so an error about it never names the runtime's id).
 */
export function runtimeResourceId(conn: ConnectionState, session: Session, id: number): number {
  const resource = conn.resource(BigInt(id));
  if (!session.resources().some((r) => r.id === resource.id))
    throw new VaccelError('ENOENT', `resource ${id} is not registered with session ${session.id}`);
  return resource.id;
}

/**
 * Runs an op for the connection: scheduled (a compute op waits for a slot of the compute pool,
 * in its tenant's queue), admitted (an image's header, an SGEMM's output) once it is about to
 * run, so queued calls hold no more than their request, and its errors told in the
 * connection's terms (plugins name resources by the runtime's ids).
 *
 * Scheduling happens here, not in a ttRPC interceptor before the handler: which op a genop is,
 * and how big its args are (shared-memory references included), is known only once its
 * request is decoded and its references resolved.
 */
export function opRunner(admission: Admission, schedule: Schedule): RunOp {
  return async (ctx, session, op, read, write) => {
    let argBytes = 0;
    for (const arg of read) argBytes += arg.buf.byteLength;
    for (const arg of write) argBytes += arg.buf.byteLength;
    await schedule(ctx, op, argBytes, async (checkpoint) => {
      await admission.op(ctx, op, read);
      let handler: Promise<void> | undefined;
      const settled = (work: Promise<void>) => {
        handler = work;
      };
      try {
        await session.doOperation(op, read, write, { signal: ctx.signal, checkpoint, settled });
      } catch (error) {
        throw inConnectionTerms(error, connectionOf(ctx));
      } finally {
        // The compute slot is held until the work has really ended: an aborted model run goes on
        // on its compute thread (ONNX Runtime cannot stop it) and counts against its tenant.
        await handler;
      }
    });
  };
}

/** Ids of resources and models as plugins and the runtime write them: "resource 12", "model 12". */
const RUNTIME_IDS = /\b(resource|model) (\d+)\b/g;

/**
 * An op's error with the runtime's resource ids replaced by the connection's (numbers the
 * connection holds no resource under stay as they are: they are not resource ids of its own).
 */
function inConnectionTerms(error: unknown, conn: ConnectionState): unknown {
  if (!isVaccelError(error)) return error;
  const message = error.message.replace(RUNTIME_IDS, (whole, what: string, id: string) => {
    const own = conn.resourceIdOf(Number(id));
    return own === undefined ? whole : `${what} ${own}`;
  });
  return message === error.message ? error : new VaccelError(error.code, message, { cause: error });
}
