/**
 * The session and resource RPCs (CreateSession … SyncResource): a connection's sessions and the
 * resources it registers, within the connection's limits, counted in the agent's metrics.
 * @module
 */
import { PluginType, type ResourceType, type Vaccel, VaccelError } from '@vaccel/core';
import type { AgentMetrics } from './metrics.js';
import { type AgentServiceImpl, connectionOf } from './rpc-context.js';
import type { ConnectionState } from './state.js';

/** Strips the REMOTE bit: on the host every plugin is local. */
const hostHint = (flags: number): number => flags & PluginType.All & ~PluginType.Remote;

/** The session and resource handlers over a runtime. */
export function sessionRpcs(
  vaccel: Vaccel,
  metrics: AgentMetrics,
): Pick<
  AgentServiceImpl,
  | 'createSession'
  | 'updateSession'
  | 'destroySession'
  | 'registerResource'
  | 'unregisterResource'
  | 'syncResource'
> {
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

  return {
    async createSession({ flags }, ctx) {
      const conn = connectionOf(ctx);
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
      connectionOf(ctx).session(sessionId).update(hostHint(flags));
      return {};
    },
    async destroySession({ sessionId }, ctx) {
      const conn = connectionOf(ctx);
      const session = conn.session(sessionId);
      conn.sessions.delete(session.id);
      await session.release();
      metrics.sessions.dec();
      await dropUnused(conn);
      return {};
    },
    async registerResource({ paths, blobs, resourceType, resourceId, sessionId }, ctx) {
      const conn = connectionOf(ctx);
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
      const conn = connectionOf(ctx);
      conn.session(sessionId).unregisterResource(conn.resource(resourceId));
      await dropUnused(conn);
      return {};
    },
    syncResource({ resourceId }, ctx) {
      return {
        blobs: connectionOf(ctx)
          .resource(resourceId)
          .blobs.map(({ data }) => ({ data, size: data.byteLength })),
      };
    },
  };
}
