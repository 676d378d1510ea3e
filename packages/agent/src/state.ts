/**
 * What one guest connection owns on the agent. Sessions and resources are scoped to it: another
 * connection's ids are NOT_FOUND, and everything is freed when the connection closes.
 * @module
 */
import { type Resource, type Session, VaccelError } from '@vaccel/core';

/** Per-connection limits. */
export interface ConnectionLimits {
  /** Sessions open at once (default 1024). */
  maxSessions: number;
  /** Resource bytes held at once (default 4 GiB). */
  maxResourceBytes: number;
}

export class ConnectionState {
  readonly sessions = new Map<number, Session>();
  readonly resources = new Map<number, Resource>();
  resourceBytes = 0;

  constructor(
    readonly id: number,
    readonly limits: ConnectionLimits,
  ) {}

  /** A session of this connection. @throws VaccelError EINVAL for ids ≤ 0, ENOENT for others' or unknown ids. */
  session(id: bigint): Session {
    const session = this.sessions.get(checkId(id, 'session'));
    if (!session) throw new VaccelError('ENOENT', `session ${id} does not exist on this connection`);
    return session;
  }

  /** A resource of this connection. */
  resource(id: bigint): Resource {
    const resource = this.resources.get(checkId(id, 'resource'));
    if (!resource) throw new VaccelError('ENOENT', `resource ${id} does not exist on this connection`);
    return resource;
  }

  /** Frees everything the connection owned. @returns how many sessions were released. */
  async release(): Promise<number> {
    const count = this.sessions.size;
    for (const session of this.sessions.values()) await session.release();
    for (const resource of this.resources.values()) await resource.release();
    this.sessions.clear();
    this.resources.clear();
    this.resourceBytes = 0;
    return count;
  }
}

/** Checks an id from the wire: a positive safe integer. */
export function checkId(id: bigint, what: string): number {
  if (id <= 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EINVAL', `${what} id ${id} is invalid`);
  return Number(id);
}
