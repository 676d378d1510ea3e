/**
 * The vAccel agent service: each RPC runs through the same @vaccel/core runtime an embedded
 * function uses. Upstream 0.8 semantics (docs/protocol.md §3, §5) plus our extension ops.
 * @module
 */
import {
  type Arg,
  Args,
  isVaccelError,
  OP_ALTERNATIVES,
  OpType,
  opName,
  PluginType,
  ReadArg,
  type ResourceType,
  type Session,
  UPSTREAM_TAG_BYTES,
  type Vaccel,
  VaccelError,
} from '@vaccel/core';
import {
  type DecodedArg,
  fromWireArg,
  type GenArg,
  refWireArg,
  type ServiceImpl,
  toWireArg,
} from '@vaccel/protocol';
import type { AgentService, AgentServiceV071 } from '@vaccel/protocol/service';
import type { CallContext } from '@vaccel/ttrpc';
import type { Admission } from './admission.js';
import type { AgentMetrics } from './metrics.js';
import { translateResourceArg } from './op-args.js';
import type { ConnectionState } from './state.js';
import { tensorflowRpcs } from './tensorflow.js';

type Impl = ServiceImpl<(typeof AgentService)['method']>;

/** Strips the REMOTE bit: on the host every plugin is local. */
const hostHint = (flags: number): number => flags & PluginType.All & ~PluginType.Remote;

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

/** The component name GetProfiler reports. */
export const PROFILER_NAME = 'vaccel-ts agent';

/** vAccel 0.7.1's GetTimers (service `vaccel.AgentService`): the same regions, 0.7.1's shape. */
export function timersService(): ServiceImpl<(typeof AgentServiceV071)['method']> {
  return {
    async getTimers({ sessionId }, ctx) {
      const regions = await (ctx.connection.context as ConnectionState).session(sessionId).profile();
      return { timers: regions.map((r) => ({ name: r.name, samples: r.samples })) };
    },
  };
}

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

/** Builds the service implementation over a runtime. */
export function agentService(
  vaccel: Vaccel,
  metrics: AgentMetrics,
  opOf: WeakMap<CallContext, string>,
  admission: Admission,
  schedule: Schedule = (_ctx, _op, _bytes, run) => run(),
): Impl {
  const state = (ctx: CallContext): ConnectionState => ctx.connection.context as ConnectionState;

  /**
   * The runtime's id of a resource the connection holds by its own id `id`, registered with
   * `session` (so an error about it never names the runtime's id).
   */
  const runtimeResourceId = (conn: ConnectionState, session: Session, id: number): number => {
    const resource = conn.resource(BigInt(id));
    if (!session.resources().some((r) => r.id === resource.id))
      throw new VaccelError('ENOENT', `resource ${id} is not registered with session ${session.id}`);
    return resource.id;
  };

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
  const runOp = async (
    ctx: CallContext,
    session: Session,
    op: OpType,
    read: Arg[],
    write: Arg[],
  ): Promise<void> => {
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
        throw inConnectionTerms(error, state(ctx));
      } finally {
        // The compute slot is held until the work has really ended: an aborted model run goes on
        // on its compute thread (ONNX Runtime cannot stop it) and counts against its tenant.
        await handler;
      }
    });
  };

  const runGenop = async (
    sessionId: bigint,
    readArgs: DecodedArg[],
    writeArgs: DecodedArg[],
    ctx: CallContext,
  ) => {
    const { regions } = state(ctx);
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
      const conn = state(ctx);
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

  const notSupported = (op: OpType) => async () => {
    throw new VaccelError('ENOTSUP', `the vaccel-ts agent cannot run ${opName(op)}: ${OP_ALTERNATIVES[op]}`);
  };

  return {
    async createSession({ flags }, ctx) {
      const conn = state(ctx);
      // Reserved before the await: pipelined calls cannot all pass the check and then insert.
      let reserved: () => void;
      try {
        reserved = conn.reserveSession();
      } catch (error) {
        metrics.refusals.labels({ reason: 'sessions' }).inc();
        throw error;
      }
      try {
        const session = await vaccel.createSession({ hint: hostHint(flags) });
        if (conn.closed) {
          await session.release();
          throw new VaccelError('ECANCELED', 'the connection closed');
        }
        conn.sessions.set(session.id, session);
        metrics.sessions.inc();
        return { sessionId: BigInt(session.id) };
      } finally {
        reserved();
      }
    },
    updateSession({ sessionId, flags }, ctx) {
      state(ctx).session(sessionId).update(hostHint(flags));
      return {};
    },
    async destroySession({ sessionId }, ctx) {
      const conn = state(ctx);
      const session = conn.session(sessionId);
      conn.sessions.delete(session.id);
      await session.release();
      metrics.sessions.dec();
      await dropUnused(conn);
      return {};
    },
    async registerResource({ paths, blobs, resourceType, resourceId, sessionId }, ctx) {
      const conn = state(ctx);
      const session = conn.session(sessionId);
      if (resourceId > 0n) {
        session.registerResource(conn.resource(resourceId));
        return { resourceId };
      }
      if (blobs.length === 0) {
        throw new VaccelError(
          paths.length > 0 ? 'EPERM' : 'EINVAL',
          paths.length > 0
            ? 'the agent does not read host paths for guests; send the files as blobs'
            : 'a resource needs blobs',
        );
      }
      let size = 0;
      for (const [i, blob] of blobs.entries()) {
        if (blob.size !== 0 && blob.size !== blob.data.byteLength)
          throw new VaccelError(
            'EINVAL',
            `blob ${i}: size ${blob.size} does not match its ${blob.data.byteLength} bytes`,
          );
        size += blob.data.byteLength;
      }
      // Reserved before the await, like sessions.
      let reserved: () => void;
      try {
        reserved = conn.reserveResourceBytes(size);
      } catch (error) {
        metrics.refusals.labels({ reason: 'resource_bytes' }).inc();
        throw error;
      }
      let id: number;
      try {
        // Equal content is one resource in the runtime (and one model in the plugins); the
        // connection sees it under an id of its own.
        const handle = await vaccel.createResource({
          type: resourceType as number as ResourceType,
          blobs: blobs.map((blob, i) => ({ name: blob.name || `blob${i}`, data: blob.data })),
        });
        if (conn.closed) {
          await handle.release();
          throw new VaccelError('ECANCELED', 'the connection closed');
        }
        const added = conn.addResource(handle);
        if (added.kept) metrics.resourceBytes.inc(handle.size);
        else await handle.release(); // same content again: one handle per connection is enough
        id = added.id;
      } finally {
        reserved();
      }
      try {
        session.registerResource(conn.resources.get(id)!);
      } catch (error) {
        await dropUnused(conn); // the session went away meanwhile
        throw error;
      }
      return { resourceId: BigInt(id) };
    },
    async unregisterResource({ resourceId, sessionId }, ctx) {
      const conn = state(ctx);
      conn.session(sessionId).unregisterResource(conn.resource(resourceId));
      await dropUnused(conn);
      return {};
    },
    syncResource({ resourceId }, ctx) {
      return {
        blobs: state(ctx)
          .resource(resourceId)
          .blobs.map(({ data }) => ({ data, size: data.byteLength })),
      };
    },
    async imageClassification({ sessionId, image }, ctx) {
      opOf.set(ctx, opName(OpType.ImageClassify));
      const write = [
        Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES)),
        Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES)),
      ];
      await runOp(ctx, state(ctx).session(sessionId), OpType.ImageClassify, [Args.buffer(image)], write);
      return { tags: write[1]!.buf };
    },
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
    async getProfiler({ sessionId }, ctx) {
      const regions = await state(ctx).session(sessionId).profile();
      return {
        profiler: {
          componentName: PROFILER_NAME,
          regions: Object.fromEntries(regions.map((r) => [r.name, { samples: r.samples }])),
        },
      };
    },
    ...tensorflowRpcs(
      {
        session: (id, ctx) => state(ctx).session(id),
        model: (session, id, ctx) => runtimeResourceId(state(ctx), session, id),
        run: runOp,
      },
      opOf,
    ),
    tensorflowLiteModelLoad: notSupported(OpType.TfliteModelLoad),
    tensorflowLiteModelUnload: notSupported(OpType.TfliteModelUnload),
    tensorflowLiteModelRun: notSupported(OpType.TfliteModelRun),
    torchModelLoad: notSupported(OpType.TorchModelLoad),
    torchModelRun: notSupported(OpType.TorchModelRun),
  };

  /** Releases resource handles no session of the connection uses any more. */
  async function dropUnused(conn: ConnectionState): Promise<void> {
    const used = new Set<number>();
    for (const session of conn.sessions.values()) for (const r of session.resources()) used.add(r.id);
    for (const [id, handle] of [...conn.resources]) {
      if (used.has(handle.id)) continue;
      conn.removeResource(id);
      metrics.resourceBytes.dec(handle.size);
      await handle.release();
    }
  }
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
