/**
 * Genop and GenopStream: any op by number, its args on the wire (in-band or references into the
 * connection's shared regions), and GenopStream's chunked args joined first.
 * @module
 */
import { Args, OpType, opName, ReadArg, type Vaccel, VaccelError } from '@vaccel/core';
import { type DecodedArg, fromWireArg, type GenArg, refWireArg, toWireArg } from '@vaccel/protocol';
import type { CallContext } from '@vaccel/ttrpc';
import type { Admission } from './admission.js';
import { translateResourceArg } from './op-args.js';
import { type RunOp, runtimeResourceId } from './op-runner.js';
import { type AgentServiceImpl, connectionOf } from './rpc-context.js';

/** Reassembles GenopStream chunks (parts/part_no) into whole args. */
function joinChunks(requests: readonly { readArgs: GenArg[]; writeArgs: GenArg[] }[]): {
  read: GenArg[];
  write: GenArg[];
} {
  const out = { read: [] as GenArg[], write: [] as GenArg[] };
  let partial: { list: GenArg[]; pieces: Uint8Array[]; arg: GenArg } | undefined;
  for (const request of requests) {
    for (const [list, args] of [
      [out.read, request.readArgs],
      [out.write, request.writeArgs],
    ] as const) {
      for (const arg of args) {
        if (arg.parts <= 1) {
          list.push(arg);
          continue;
        }
        if (!partial || arg.partNo === 1) partial = { list, pieces: [], arg };
        if (arg.partNo !== partial.pieces.length + 1 || arg.parts !== partial.arg.parts) {
          throw new VaccelError('EINVAL', `genop stream: chunk ${arg.partNo}/${arg.parts} out of order`);
        }
        partial.pieces.push(arg.buf);
        if (arg.partNo === arg.parts) {
          const buf = Buffer.concat(partial.pieces);
          list.push({ ...arg, buf, size: buf.byteLength, parts: 0, partNo: 0 });
          partial = undefined;
        }
      }
    }
  }
  if (partial) throw new VaccelError('EINVAL', 'genop stream ended inside a chunked arg');
  return out;
}

/** The genop handlers: ops run by `runOp`, the op each call runs recorded in `opOf`. */
export function genopRpcs(
  vaccel: Vaccel,
  opOf: WeakMap<CallContext, string>,
  admission: Admission,
  runOp: RunOp,
): Pick<AgentServiceImpl, 'genop' | 'genopStream'> {
  const runGenop = async (
    sessionId: bigint,
    readArgs: DecodedArg[],
    writeArgs: DecodedArg[],
    ctx: CallContext,
  ) => {
    const { regions } = connectionOf(ctx);
    // Regions a reference of this call points into stay mapped until the op is over.
    const pinned = new Set<number>();
    const resolve = (ref: Parameters<typeof regions.resolve>[0], where: string) =>
      regions.resolve(ref, where, pinned);
    try {
      const read = readArgs.map((arg, i) => fromWireArg(arg, 'genop read', i, resolve));
      const write = writeArgs.map((arg, i) => fromWireArg(arg, 'genop write', i, resolve));
      const op = ReadArg.uint8(read[0], 'genop op') as OpType;
      opOf.set(ctx, opName(op));
      // Listing needs no session: clients probe with it right after connecting.
      if (op === OpType.ListOperations) {
        const ops = (await vaccel.listOperations()).map(({ op, name, plugin }) => ({ op, name, plugin }));
        const out = write[0] ?? Args.raw();
        out.buf = new TextEncoder().encode(JSON.stringify(ops));
        return { writeArgs: [toWireArg(out)] };
      }
      const conn = connectionOf(ctx);
      const session = conn.session(sessionId);
      const args = read.slice(1);
      translateResourceArg(op, args, (id) => runtimeResourceId(conn, session, id));
      const given = write.map((arg) => arg.buf);
      await runOp(ctx, session, op, args, write);
      // Outputs the plugin sized (it replaced the buffer) are new memory until the reply is out.
      let sized = 0;
      for (const [i, arg] of write.entries()) if (arg.buf !== given[i]) sized += arg.buf.byteLength;
      admission.outputs(ctx, sized);
      // Outputs the op left in a shared region (in place) go back as references, the rest in-band.
      return {
        writeArgs: write.map((arg) => {
          const ref = pinned.size > 0 ? regions.refOf(arg.buf) : undefined;
          return ref ? refWireArg(arg, ref) : toWireArg(arg);
        }),
      };
    } finally {
      if (pinned.size > 0) regions.unpin(pinned);
    }
  };

  return {
    genop({ sessionId, readArgs, writeArgs }, ctx) {
      return runGenop(sessionId, readArgs, writeArgs, ctx);
    },
    async genopStream(requests, ctx) {
      const all: { sessionId: bigint; readArgs: GenArg[]; writeArgs: GenArg[] }[] = [];
      for await (const request of requests) all.push(request);
      if (all.length === 0) throw new VaccelError('EINVAL', 'genop stream carried no request');
      // Chunks are joined into new buffers: admit those before they exist.
      let joined = 0;
      for (const { readArgs, writeArgs } of all)
        for (const arg of [...readArgs, ...writeArgs]) if (arg.parts > 1) joined += arg.buf.byteLength;
      admission.budget.admit(ctx, joined, 'memory_frame', 'joining the genop stream');
      const { read, write } = joinChunks(all);
      return runGenop(all[0]!.sessionId, read, write, ctx);
    },
  };
}
