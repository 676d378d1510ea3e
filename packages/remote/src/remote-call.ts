/**
 * One op's trip as a genop: its args into wire form (views in our shared regions as references,
 * big plain arrays through the staging region), the call, the reply's outputs into the caller's
 * args, and who owns the staged copies when it fails.
 * @internal
 */
import { type Arg, Args, EXTENSION_OP_MIN, type OpType, opInfo } from '@vaccel/core';
import { toWireArg, type WireArg } from '@vaccel/protocol';
import type { CallOptions } from '@vaccel/ttrpc';
import { Code, TtrpcError } from '@vaccel/ttrpc';
import type { Linked } from './link.js';
import type { GuestRegions, Staged } from './shared-memory.js';

/** read_args[0] of a genop, per op: the same bytes for every call (only ever read). */
const opArgs = new Map<OpType, WireArg>();
function opArg(op: OpType): WireArg {
  let arg = opArgs.get(op);
  if (!arg) {
    arg = toWireArg(Args.uint8(op));
    opArgs.set(op, arg);
  }
  return arg;
}

/** A copy of reply bytes the caller keeps (uninitialised memory, filled at once). */
function copyOut(bytes: Uint8Array): Uint8Array {
  const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
  copy.set(bytes);
  return new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
}

/** One genop call. */
export interface GenopCall {
  op: OpType;
  /** The agent's session id. */
  sessionId: bigint;
  /** Read args after the op number (resource ids already the agent's). */
  read: readonly Arg[];
  /** Write args: filled in place, or given the agent's outputs (see {@link agentSizesOutputs}). */
  write: Arg[];
}

/**
 * True when the agent sizes `op`'s outputs — our extension ops, and the tf_model and tflite_model
 * ops (upstream's numbers with our model ops' layout; upstream serves them only as its dedicated
 * RPCs): the caller
 * gets them in memory of its own (or in the room it gave). Upstream ops fill the caller's buffers
 * in place.
 */
export const agentSizesOutputs = (op: OpType): boolean =>
  op >= EXTENSION_OP_MIN || opInfo(op)?.upstreamRpc !== undefined;

/** Runs `call` on `linked`; staging and shared references through `regions`. */
export async function callGenop(
  linked: Linked,
  regions: GuestRegions,
  { op, sessionId, read, write }: GenopCall,
  options: CallOptions,
): Promise<void> {
  const staged: Staged[] = [];
  let sent = false;
  let done = false;
  try {
    const readWire = regions.wireArgs(linked, read, staged);
    const writeWire = regions.wireArgs(linked, write, staged);
    const payload = linked.stub.encodeGenop({
      sessionId,
      readArgs: [opArg(op), ...(readWire instanceof Promise ? await readWire : readWire)],
      writeArgs: writeWire instanceof Promise ? await writeWire : writeWire,
    });
    const inPlace = !agentSizesOutputs(op);
    sent = true;
    // The reply's buffer is reused after this reads it; outputs left in shared memory come as references.
    await linked.stub.genopWith(
      payload,
      (reply) => {
        for (const [i, arg] of write.entries()) {
          const wire = reply.writeArgs[i];
          if (!wire) continue;
          const got = wire.ref ? regions.output(linked, wire.ref, arg, inPlace) : wire.buf;
          if (!got) continue;
          if (inPlace) arg.buf.set(got.subarray(0, arg.buf.byteLength));
          else if (got.byteLength > 0 && got.byteLength <= arg.buf.byteLength) {
            arg.buf.set(got);
            arg.buf = arg.buf.subarray(0, got.byteLength);
          } else arg.buf = copyOut(got);
        }
      },
      options,
    );
    done = true;
  } catch (error) {
    // An agent that answered is done with the staged copies; one that timed out or went away
    // may still write into them, so they stay taken (the region goes with its connection).
    done =
      !sent ||
      (error instanceof TtrpcError && error.code !== Code.DEADLINE_EXCEEDED && error.code !== Code.CANCELLED);
    throw error;
  } finally {
    if (done) regions.unstage(staged);
  }
}
