/**
 * Connection governance: how many connections the agent holds (all together and per peer), how
 * long one may sit idle, how long a frame may take to arrive, and how many reply bytes a peer may
 * leave unread before its connection stops being read. Every refusal is logged once, with the
 * peer, and counted (`vaccel_agent_connections_dropped_total{reason}`).
 *
 * Peers: a unix-socket peer is its uid (SO_PEERCRED, through the @vaccel/memory addon); a TCP
 * peer is its remote address; an AF_VSOCK peer is its VM's CID. Without the addon unix peers are
 * not told apart (the global cap still holds).
 * @module
 */
import type { Logger } from '@vaccel/core';
import type { Connection } from '@vaccel/ttrpc';
import type { AgentMetrics } from './metrics.js';
import type { ConnectionState } from './state.js';

const MiB = 1024 ** 2;

/** Bounds on the agent's connections (each documented with its flag in `vaccel-agent --help`). */
export interface ConnectionBounds {
  /** Guest connections held at once, all peers together (default 1024). */
  maxConnections: number;
  /** Guest connections held at once per peer (default 256). */
  maxPeerConnections: number;
  /** Milliseconds a connection holding nothing (no session, resource, region or call) is kept (default 60 s). */
  idleTimeoutMs: number;
  /** Milliseconds a frame may take from its first byte to its last (default 30 s). */
  frameTimeoutMs: number;
  /** Reply bytes a peer may leave unread before its connection stops being read (default 64 MiB). */
  maxUnsentBytes: number;
  /** Bytes one client stream (GenopStream) may carry (default: the frame limit). */
  maxStreamBytes: number | undefined;
  /** Handover-socket connections and unclaimed handovers held at once, all peers (default 256). */
  maxHandovers: number;
  /** Handover-socket connections and unclaimed handovers held at once per process (default 4). */
  maxPeerHandovers: number;
}

export const DEFAULT_BOUNDS: ConnectionBounds = {
  maxConnections: 1024,
  maxPeerConnections: 256,
  idleTimeoutMs: 60_000,
  frameTimeoutMs: 30_000,
  maxUnsentBytes: 64 * MiB,
  maxStreamBytes: undefined,
  maxHandovers: 256,
  maxPeerHandovers: 4,
};

/** Why a connection was refused or closed (the metric's label: a closed set). */
export type DropReason =
  | 'max_connections'
  | 'max_peer_connections'
  | 'idle_timeout'
  | 'frame_timeout'
  | 'handover_connections'
  | 'handover_peer';

/** Counts, caps and times out the agent's guest connections. */
export class ConnectionGovernor {
  #open = 0;
  readonly #perPeer = new Map<string, number>();
  readonly #idle = new Map<Connection, NodeJS.Timeout>();
  readonly #connections = new Set<Connection>();

  constructor(
    readonly bounds: ConnectionBounds,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
  ) {
    metrics.connectionsNow = () => {
      let unsent = 0;
      let paused = 0;
      for (const connection of this.#connections) {
        unsent += connection.unsentBytes;
        if (connection.readPaused) paused++;
      }
      return { unsent, paused };
    };
  }

  /** Logs and counts one refusal. */
  drop(reason: DropReason, fields: Record<string, unknown>, message: string): void {
    this.metrics.connectionsDropped.inc({ reason });
    this.log.warn({ reason, ...fields }, message);
  }

  /**
   * Admits a new connection, or closes it at once (logged, counted) when a cap is reached. An
   * admitted one gets its backpressure, its frame deadline and its idle clock.
   * @returns false when it was refused.
   */
  admit(connection: Connection, peer: string | undefined): boolean {
    const { bounds } = this;
    const fromPeer = peer === undefined ? 0 : (this.#perPeer.get(peer) ?? 0);
    const global = this.#open >= bounds.maxConnections;
    if (global || fromPeer >= bounds.maxPeerConnections) {
      this.drop(
        global ? 'max_connections' : 'max_peer_connections',
        { conn: connection.id, peer, limit: global ? bounds.maxConnections : bounds.maxPeerConnections },
        global
          ? 'too many guest connections; closing a new one'
          : 'too many connections from one peer; closing a new one',
      );
      connection.close();
      return false;
    }
    this.#open++;
    if (peer !== undefined) this.#perPeer.set(peer, fromPeer + 1);
    this.#connections.add(connection);
    let pauses = 0;
    connection.bound({
      maxUnsent: bounds.maxUnsentBytes,
      frameTimeout: bounds.frameTimeoutMs,
      paused: (unsent) => {
        this.metrics.readPauses.inc();
        // The first pause of a connection is worth a line; later ones are the same story.
        const fields = { conn: connection.id, peer, unsent, bound: bounds.maxUnsentBytes };
        if (pauses++ === 0)
          this.log.warn(fields, 'guest is not reading its replies; its connection is paused');
        else this.log.debug(fields, 'connection paused');
      },
      resumed: () => this.log.debug({ conn: connection.id }, 'connection resumed'),
      refused: () => this.metrics.repliesRefused.inc(),
      stalled: () =>
        this.drop(
          'frame_timeout',
          { conn: connection.id, peer, frameTimeoutMs: bounds.frameTimeoutMs },
          'a frame was not finished in time; closing the connection',
        ),
    });
    // One timer per connection, due idleTimeoutMs after its last frame (read or written). A
    // connection that holds something, or has a call in flight, is looked at again a period later.
    const ms = bounds.idleTimeoutMs;
    const timers = this.#idle;
    const check = (): void => {
      timers.delete(connection);
      if (connection.closed) return;
      const silent = performance.now() - connection.lastActive;
      if (silent < ms) {
        schedule(ms - silent);
        return;
      }
      const state = connection.context as ConnectionState | undefined;
      if (connection.inflight > 0 || (state !== undefined && !state.holdsNothing)) {
        schedule(ms);
        return;
      }
      this.drop(
        'idle_timeout',
        { conn: connection.id, peer, idleTimeoutMs: ms },
        'closing an idle connection (no session, no call)',
      );
      connection.close();
    };
    const schedule = (delay: number): void => {
      const timer = setTimeout(check, Math.max(1, delay));
      timer.unref();
      timers.set(connection, timer);
    };
    schedule(ms);
    connection.on('close', () => {
      this.#open--;
      this.#connections.delete(connection);
      if (peer !== undefined) {
        const left = (this.#perPeer.get(peer) ?? 1) - 1;
        if (left === 0) this.#perPeer.delete(peer);
        else this.#perPeer.set(peer, left);
      }
      clearTimeout(timers.get(connection));
      timers.delete(connection);
    });
    return true;
  }
}
