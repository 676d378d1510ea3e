/**
 * What one guest connection owns on the agent. Sessions and resources are scoped to it: another
 * connection's ids are NOT_FOUND, and everything is freed when the connection closes.
 *
 * Resource ids are the connection's own (1, 2, … in the order it registered them). The runtime
 * keeps one copy of equal content (by digest) and gives it one id; handing that id out would tell
 * a guest that another tenant uploaded the same bytes, so it never leaves the agent.
 * @module
 */
import { type Resource, type Session, VaccelError } from '@vaccel/core';
import { ConnectionRegions } from './regions.js';

/** Per-connection limits. */
export interface ConnectionLimits {
  /** Sessions open at once (default 1024). */
  maxSessions: number;
  /** Resource bytes held at once (default 4 GiB). */
  maxResourceBytes: number;
  /** Shared-memory regions attached at once (default 16). */
  maxRegions: number;
  /** Bytes of one shared-memory region (default 4 GiB). */
  maxRegionBytes: number;
}

/** Memory the host gave the VM behind a connection (its ivshmem device), mapped by the agent. */
export interface DeviceMemory {
  readonly buffer: ArrayBuffer;
}

export class ConnectionState {
  readonly sessions = new Map<number, Session>();
  /** Resources by this connection's id for them. */
  readonly resources = new Map<number, Resource>();
  /** This connection's id of each of its resources, by the runtime's id. */
  readonly #ids = new Map<number, number>();
  #nextResourceId = 1;
  /** Bytes of the resources held. */
  resourceBytes = 0;
  /** Sessions and resource bytes reserved by calls still creating them (counted against the limits). */
  #pendingSessions = 0;
  #pendingResourceBytes = 0;
  /** True once the connection closed and its state was released. */
  closed = false;
  /** Shared-memory regions attached to this connection. */
  readonly regions = new ConnectionRegions();
  /** Nonces offered to this connection and not yet used (hex). */
  readonly offers = new Set<string>();

  constructor(
    readonly id: number,
    readonly limits: ConnectionLimits,
    /** The guest process at the other end of a unix socket (SO_PEERCRED), when known. */
    readonly peer?: { pid: number; uid: number },
    /** The VM's device memory, for a connection from a VM the host gave one. */
    readonly device?: DeviceMemory,
  ) {}

  /**
   * True when the connection holds nothing a guest would lose by being cut off: no session, no
   * resource, no region. Such a connection may be closed when it is also silent.
   */
  get holdsNothing(): boolean {
    return (
      this.sessions.size === 0 &&
      this.#pendingSessions === 0 &&
      this.resources.size === 0 &&
      this.regions.count === 0
    );
  }

  /** A session of this connection. @throws VaccelError EINVAL for ids ≤ 0, ENOENT for others' or unknown ids. */
  session(id: bigint): Session {
    const session = this.sessions.get(checkId(id, 'session'));
    if (!session) throw new VaccelError('ENOENT', `session ${id} does not exist on this connection`);
    return session;
  }

  /** A resource of this connection, by the connection's id for it. */
  resource(id: bigint): Resource {
    const resource = this.resources.get(checkId(id, 'resource'));
    if (!resource) throw new VaccelError('ENOENT', `resource ${id} does not exist on this connection`);
    return resource;
  }

  /** This connection's id for a resource of the runtime (undefined when the connection holds none). */
  resourceIdOf(runtimeId: number): number | undefined {
    return this.#ids.get(runtimeId);
  }

  /**
   * Keeps a handle, unless the connection holds that resource already.
   * @returns the connection's id for it and whether `handle` was kept (else release it).
   */
  addResource(handle: Resource): { id: number; kept: boolean } {
    const known = this.#ids.get(handle.id);
    if (known !== undefined) return { id: known, kept: false };
    const id = this.#nextResourceId++;
    this.resources.set(id, handle);
    this.#ids.set(handle.id, id);
    this.resourceBytes += handle.size;
    return { id, kept: true };
  }

  /** Forgets a resource (by the connection's id); the caller releases the handle. */
  removeResource(id: number): Resource | undefined {
    const handle = this.resources.get(id);
    if (!handle) return undefined;
    this.resources.delete(id);
    this.#ids.delete(handle.id);
    this.resourceBytes -= handle.size;
    return handle;
  }

  /**
   * Reserves a session slot before any await, so calls in flight together cannot pass the limit
   * between their check and their insert. Call the returned function once the session is in
   * {@link sessions} (or was not made).
   * @throws VaccelError `EUSERS` when the connection is at its limit.
   */
  reserveSession(): () => void {
    if (this.sessions.size + this.#pendingSessions >= this.limits.maxSessions)
      throw new VaccelError('EUSERS', `more than ${this.limits.maxSessions} sessions on this connection`);
    this.#pendingSessions++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#pendingSessions--;
    };
  }

  /**
   * Reserves resource bytes before any await (see {@link reserveSession}); the returned function
   * gives them back once the resource is held (its bytes now count in {@link resourceBytes}) or
   * was not made.
   * @throws VaccelError `E2BIG` when they would pass the connection's limit.
   */
  reserveResourceBytes(bytes: number): () => void {
    if (this.resourceBytes + this.#pendingResourceBytes + bytes > this.limits.maxResourceBytes)
      throw new VaccelError(
        'E2BIG',
        `resources on this connection would exceed ${this.limits.maxResourceBytes} bytes`,
      );
    this.#pendingResourceBytes += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#pendingResourceBytes -= bytes;
    };
  }

  /** Frees everything the connection owned. @returns how many sessions were released. */
  async release(): Promise<number> {
    this.closed = true;
    const count = this.sessions.size;
    const sessions = [...this.sessions.values()];
    const resources = [...this.resources.values()];
    this.sessions.clear();
    this.resources.clear();
    this.#ids.clear();
    this.resourceBytes = 0;
    this.regions.detachAll();
    this.offers.clear();
    for (const session of sessions) await session.release();
    for (const resource of resources) await resource.release();
    return count;
  }
}

/** Checks an id from the wire: a positive safe integer. */
export function checkId(id: bigint, what: string): number {
  if (id <= 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EINVAL', `${what} id ${id} is invalid`);
  return Number(id);
}
