/**
 * A guest session's state on one agent: the agent's session (created on the session's first op
 * over each connection), the resources registered with it (uploaded once per connection, by
 * digest), and the models it loaded — loaded again when a reconnect gives it a new agent session.
 * @internal
 */
import { type OpArgs, type OpContext, type OpType, PluginType, type SessionInfo } from '@vaccel/core';
import type { CallOptions } from '@vaccel/ttrpc';
import type { Linked } from './link.js';
import { LoadedModels } from './loaded-models.js';

/** One guest session's agent session over one connection. */
export interface AgentSession {
  /** The connection it lives on ({@link Linked.generation}); gone with it. */
  readonly generation: number;
  readonly agentId: bigint;
  /** Local resource ids registered with the agent session. */
  readonly registered: Set<number>;
}

/** How the sessions reach the agent: call options for an op, and running an op (to replay loads). */
export interface SessionDeps {
  callOptions(ctx: OpContext): CallOptions;
  run(op: OpType, args: OpArgs, ctx: OpContext): Promise<void>;
}

/** The guest sessions of one single-agent RPC plugin. */
export class RemoteSessions {
  readonly #sessions = new Map<number, AgentSession>();
  /** Agent sessions being created, so concurrent first ops of a session create only one. */
  readonly #creating = new Map<number, { generation: number; done: Promise<AgentSession> }>();
  /** Per guest session, across connections. */
  readonly #models = new Map<number, LoadedModels>();

  constructor(private readonly deps: SessionDeps) {}

  /** The session's agent session on `linked`, created (and its models loaded again) when it has none. */
  of(linked: Linked, info: SessionInfo, ctx: OpContext): Promise<AgentSession> | AgentSession {
    const s = this.#sessions.get(info.id);
    if (s?.generation === linked.generation) return s;
    const pending = this.#creating.get(info.id);
    if (pending?.generation === linked.generation) return pending.done;
    const done = this.#create(linked, info, ctx).finally(() => {
      if (this.#creating.get(info.id)?.done === done) this.#creating.delete(info.id);
    });
    this.#creating.set(info.id, { generation: linked.generation, done });
    return done;
  }

  /** The session's agent session on `linked` if it has one (no call). */
  live(id: number, linked: Linked | undefined): AgentSession | undefined {
    const s = this.#sessions.get(id);
    return s && linked?.generation === s.generation ? s : undefined;
  }

  /** The models the session has loaded. */
  models(id: number): LoadedModels {
    let models = this.#models.get(id);
    if (!models) {
      models = new LoadedModels();
      this.#models.set(id, models);
    }
    return models;
  }

  async #create(linked: Linked, info: SessionInfo, ctx: OpContext): Promise<AgentSession> {
    const { sessionId } = await linked.stub.createSession(
      { flags: info.hint & ~PluginType.Remote },
      this.deps.callOptions(ctx),
    );
    const s: AgentSession = { generation: linked.generation, agentId: sessionId, registered: new Set() };
    // Set before the replay, whose ops find it here (they would wait on themselves otherwise).
    this.#sessions.set(info.id, s);
    // The agent lost the models this session had loaded over the old connection: load them again.
    await this.models(info.id).replay((op, args) => this.deps.run(op, args, ctx));
    return s;
  }

  /** The agent's id of local resource `localId` for `s`, uploading or registering it first if needed. */
  async resource(linked: Linked, s: AgentSession, localId: number, ctx: OpContext): Promise<bigint> {
    const data = ctx.resource(localId);
    const options = this.deps.callOptions(ctx);
    let agentId = linked.resources.get(data.digest);
    if (agentId !== undefined && !s.registered.has(localId)) {
      try {
        await linked.stub.registerResource({ resourceId: agentId, sessionId: s.agentId }, options);
      } catch {
        agentId = undefined; // the agent freed it meanwhile: upload again
      }
    }
    if (agentId === undefined) {
      const blobs = data.blobs.map(({ name, data: bytes }) => ({
        type: 1, // resource.BlobType.BUFFER
        name,
        data: bytes,
        size: bytes.byteLength,
      }));
      ({ resourceId: agentId } = await linked.stub.registerResource(
        { blobs, resourceType: data.type, resourceId: 0n, sessionId: s.agentId },
        options,
      ));
      linked.resources.set(data.digest, agentId);
    }
    s.registered.add(localId);
    return agentId;
  }

  /** Forgets the session; destroys its agent session if it is on `linked` (else it died with its connection). */
  async release(id: number, linked: Linked | undefined): Promise<void> {
    const s = this.live(id, linked);
    this.#sessions.delete(id);
    this.#models.delete(id);
    if (s && linked) await linked.stub.destroySession({ sessionId: s.agentId }).catch(() => {});
  }
}
