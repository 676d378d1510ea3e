/**
 * What one guest connection owns on the agent. Sessions and resources are scoped to it: another
 * connection's ids are NOT_FOUND, and everything is freed when the connection closes.
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
  readonly resources = new Map<number, Resource>();
  resourceBytes = 0;
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
    this.regions.detachAll();
    this.offers.clear();
    return count;
  }
}

/** Checks an id from the wire: a positive safe integer. */
export function checkId(id: bigint, what: string): number {
  if (id <= 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EINVAL', `${what} id ${id} is invalid`);
  return Number(id);
}
