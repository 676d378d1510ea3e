/**
 * virtio-vsock packets (virtio 1.2 §5.10.6): a 44-byte little-endian header, then for RW packets
 * `len` bytes of stream data. Every packet carries its sender's receive credit (`buf_alloc`,
 * `fwd_cnt`).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { gather, scatter } from '../virtqueue.js';

/** Bytes of `struct virtio_vsock_hdr`. */
export const HEADER_BYTES = 44;
/** The host's CID: where a guest reaches host services. */
export const HOST_CID = 2;
/** The most data one packet may carry (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
export const MAX_PACKET_DATA = 64 * 1024;

/** Packet operations. */
export const Op = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;

/** Socket types. */
export const SocketType = { STREAM: 1, SEQPACKET: 2 } as const;

/** SHUTDOWN flags: the sender will receive no more, send no more. */
export const Shutdown = { RECEIVE: 1, SEND: 2, BOTH: 3 } as const;

/** A packet header. CIDs are u64 on the wire; Linux's are u32 and so are ours (larger ones are refused). */
export interface Header {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  /** Bytes of data that follow. */
  len: number;
  type: number;
  op: number;
  flags: number;
  /** The sender's receive buffer for this connection. */
  bufAlloc: number;
  /** Bytes the sender has taken out of that buffer since the connection began (wrapping u32). */
  fwdCnt: number;
}

/** Reads a CID; one past 32 bits is not a CID anyone has. */
function cid(view: DataView, at: number): number {
  if (view.getUint32(at + 4, true) !== 0) return Number.NaN;
  return view.getUint32(at, true);
}

/** Decodes the header at the start of a TX chain's readable buffers. */
export function readHeader(readable: readonly Uint8Array[]): Header {
  const bytes = gather(readable, 0, HEADER_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  return {
    srcCid: cid(view, 0),
    dstCid: cid(view, 8),
    srcPort: view.getUint32(16, true),
    dstPort: view.getUint32(20, true),
    len: view.getUint32(24, true),
    type: view.getUint16(28, true),
    op: view.getUint16(30, true),
    flags: view.getUint32(32, true),
    bufAlloc: view.getUint32(36, true),
    fwdCnt: view.getUint32(40, true),
  };
}

/** Encodes a header. */
export function encodeHeader(header: Header): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, header.srcCid, true);
  view.setUint32(8, header.dstCid, true);
  view.setUint32(16, header.srcPort, true);
  view.setUint32(20, header.dstPort, true);
  view.setUint32(24, header.len, true);
  view.setUint16(28, header.type, true);
  view.setUint16(30, header.op, true);
  view.setUint32(32, header.flags, true);
  view.setUint32(36, header.bufAlloc, true);
  view.setUint32(40, header.fwdCnt, true);
  return bytes;
}

/** Writes a packet into an RX chain's writable buffers; returns the bytes written. */
export function writePacket(writable: readonly Uint8Array[], header: Header, data?: Uint8Array): number {
  scatter(writable, 0, encodeHeader(header));
  if (data && data.byteLength > 0) scatter(writable, HEADER_BYTES, data);
  return HEADER_BYTES + (data?.byteLength ?? 0);
}

/** A copy of a TX packet's data (guest memory may change once the chain is returned). */
export function readData(readable: readonly Uint8Array[], header: Header, readableBytes: number): Uint8Array {
  if (header.len > MAX_PACKET_DATA)
    throw new VaccelError('EBADMSG', `a packet of ${header.len} bytes (at most ${MAX_PACKET_DATA})`);
  if (HEADER_BYTES + header.len > readableBytes)
    throw new VaccelError(
      'EBADMSG',
      `a packet says ${header.len} bytes of data but its buffers hold ${readableBytes - HEADER_BYTES}`,
    );
  return gather(readable, HEADER_BYTES, header.len, true);
}
