/**
 * TCP_QUICKACK after every read, for agents that write a reply's header and body in two sends
 * with Nagle on (upstream's vaccel-rpc-agent: Rust ttrpc, no TCP_NODELAY). Nagle holds the body
 * until the header is acknowledged, and Linux delays that ACK once the connection looks
 * interactive (up to 40 ms: docs/protocol.md §8). We cannot change their socket; we can
 * acknowledge at once. Quick-ack mode is not sticky (the kernel goes back to delayed ACKs), so it
 * is re-armed after each read; setting it also sends an ACK already pending.
 * @internal
 */
import type { Duplex } from 'node:stream';
import type { Native } from '@vaccel/memory';

/** Internals of net and TLS sockets that lead to the TCP descriptor (Linux). */
interface HandleInternals {
  _handle?: { fd?: number; _parent?: { fd?: number } } | null;
}

/** The TCP descriptor under a net.Socket or a TLS socket, or undefined. */
export function tcpDescriptor(stream: Duplex): number | undefined {
  const handle = (stream as Duplex & HandleInternals)._handle;
  const fd = handle?._parent?.fd ?? handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * A ttRPC client `onRead` hook re-arming quick-ack on the connection's TCP socket. `armed` is
 * called once, after the first read that armed it (a log line). A socket without a descriptor, or
 * one that refuses the option, turns the hook off for good.
 */
export function quickAckOnRead(lib: Native, armed?: (fd: number) => void): (stream: Duplex) => void {
  let fd: number | undefined;
  let off = false;
  return (stream) => {
    if (off) return;
    if (fd === undefined) {
      fd = tcpDescriptor(stream);
      if (fd === undefined) {
        off = true;
        return;
      }
      try {
        lib.tcpQuickAck(fd);
      } catch {
        off = true;
        return;
      }
      armed?.(fd);
      return;
    }
    try {
      lib.tcpQuickAck(fd);
    } catch {
      off = true; // closed under us, or not TCP after all
    }
  };
}
