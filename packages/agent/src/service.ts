/**
 * The vAccel agent service: each RPC runs through the same @vaccel/core runtime an embedded
 * function uses. Upstream 0.8 semantics (shared/PROTOCOL.md §3, §5) plus our extension ops.
 * @module
 */
import {
  Args,
  OP_ALTERNATIVES,
  OpType,
  opName,
  PluginType,
  ReadArg,
  type ResourceType,
  UPSTREAM_TAG_BYTES,
  type Vaccel,
  VaccelError,
} from '@vaccel/core';
import {
  type AgentService,
  type AgentServiceV071,
  type DecodedArg,
  fromWireArg,
  type GenArg,
  refWireArg,
  type ServiceImpl,
  toWireArg,
} from '@vaccel/remote';
import type { CallContext } from '@vaccel/ttrpc';
import type { AgentMetrics } from './metrics.js';
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

/** Builds the service implementation over a runtime. */
export function agentService(
  vaccel: Vaccel,
  metrics: AgentMetrics,
  opOf: WeakMap<CallContext, string>,
): Impl {
  const state = (ctx: CallContext): ConnectionState => ctx.connection.context as ConnectionState;

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
      const op = ReadArg.uint8(read[0], 'genop op');
      opOf.set(ctx, opName(op));
      // Listing needs no session: clients probe with it right after connecting.
      if (op === OpType.ListOperations) {
        const ops = (await vaccel.listOperations()).map(({ op, name, plugin }) => ({ op, name, plugin }));
        const out = write[0] ?? Args.raw();
        out.buf = new TextEncoder().encode(JSON.stringify(ops));
        return { writeArgs: [toWireArg(out)] };
      }
      const session = state(ctx).session(sessionId);
      await session.doOperation(op as OpType, read.slice(1), write, { signal: ctx.signal });
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
      if (conn.sessions.size >= conn.limits.maxSessions) {
        throw new VaccelError('EUSERS', `more than ${conn.limits.maxSessions} sessions on this connection`);
      }
      const session = await vaccel.createSession({ hint: hostHint(flags) });
      conn.sessions.set(session.id, session);
      metrics.sessions.inc();
      return { sessionId: BigInt(session.id) };
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
      if (conn.resourceBytes + size > conn.limits.maxResourceBytes) {
        throw new VaccelError(
          'E2BIG',
          `resources on this connection would exceed ${conn.limits.maxResourceBytes} bytes`,
        );
      }
      const handle = await vaccel.createResource({
        type: resourceType as number as ResourceType,
        blobs: blobs.map((blob, i) => ({ name: blob.name || `blob${i}`, data: blob.data })),
      });
      const existing = conn.resources.get(handle.id);
      if (existing)
        await handle.release(); // same content again: one handle per connection is enough
      else {
        conn.resources.set(handle.id, handle);
        conn.resourceBytes += size;
        metrics.resourceBytes.inc(size);
      }
      session.registerResource(existing ?? handle);
      return { resourceId: BigInt(handle.id) };
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
      await state(ctx)
        .session(sessionId)
        .doOperation(OpType.ImageClassify, [Args.buffer(image)], write, { signal: ctx.signal });
      return { tags: write[1]!.buf };
    },
    genop({ sessionId, readArgs, writeArgs }, ctx) {
      return runGenop(sessionId, readArgs, writeArgs, ctx);
    },
    async genopStream(requests, ctx) {
      const all: { sessionId: bigint; readArgs: GenArg[]; writeArgs: GenArg[] }[] = [];
      for await (const request of requests) all.push(request);
      if (all.length === 0) throw new VaccelError('EINVAL', 'genop stream carried no request');
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
    ...tensorflowRpcs((id, ctx) => state(ctx).session(id), opOf),
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
    for (const [id, handle] of conn.resources) {
      if (used.has(id)) continue;
      conn.resources.delete(id);
      conn.resourceBytes -= handle.size;
      metrics.resourceBytes.dec(handle.size);
      await handle.release();
    }
  }
}
