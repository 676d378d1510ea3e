/**
 * Agent addresses, in upstream's URI style.
 *
 * | Form | Meaning |
 * |---|---|
 * | `unix:///abs/path`, `unix://@name` | unix socket (`@` = Linux abstract namespace) |
 * | `tcp://host:port` | TCP (upstream's default is `tcp://127.0.0.1:65500`) |
 * | `tls://host:port` | TCP with TLS (ours: upstream has no TLS; certificates from options or `VACCEL_RPC_TLS_*`) |
 * | `vsock://CID:PORT` | AF_VSOCK, through the `@vaccel/memory` addon: a guest connects to its host, CID 2; an agent listens on `vsock://-1:PORT` (`-1` or `any`: every CID of its machine). Ports are 32-bit. Firecracker's host side is a unix socket instead: `unix://<uds>_<PORT>` |
 * | `hvsock:///abs/uds:PORT` | host side of Firecracker hybrid vsock: connect to the VMM's socket and send `CONNECT PORT` |
 * | `virtio-serial:///dev/virtio-ports/NAME` | guest side of a QEMU virtio-serial port (a char device) |
 * @module
 */
import { isAbsolute } from 'node:path';
import { VaccelError } from '@vaccel/core';

/** A parsed address. */
export type Address =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'tls'; host: string; port: number }
  | { kind: 'vsock'; cid: number; port: number }
  | { kind: 'hvsock'; path: string; port: number }
  | { kind: 'serial'; path: string };

/** `VMADDR_CID_ANY`, written `-1` (as Kata does) or `any`: a listener on every CID of its machine. */
export const VSOCK_CID_ANY = 0xffffffff;

/** Upstream's default agent address. */
export const DEFAULT_ADDRESS = 'tcp://127.0.0.1:65500';

/**
 * Every address kind with the forms it is written in: the error messages list them, and the
 * transport test (packages/protocol/test/transports.test.ts) wants a case for each kind.
 */
export const ADDRESS_FORMS: Readonly<Record<Address['kind'], readonly string[]>> = {
  unix: ['unix:///path', 'unix://@abstract'],
  tcp: ['tcp://host:port'],
  tls: ['tls://host:port'],
  vsock: ['vsock://CID:PORT'],
  hvsock: ['hvsock:///uds:PORT'],
  serial: ['virtio-serial:///dev/virtio-ports/NAME'],
};

const FORMS = Object.values(ADDRESS_FORMS).flat().join(', ');

function invalid(address: string, why: string): never {
  throw new VaccelError('EINVAL', `invalid address ${JSON.stringify(address)}: ${why} (accepted: ${FORMS})`);
}

function port(text: string, address: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535)
    invalid(address, `port ${JSON.stringify(text)} is not 1–65535`);
  return n;
}

/**
 * Parses an address string.
 * @throws VaccelError `EINVAL` naming the accepted forms.
 */
export function parseAddress(address: string): Address {
  if (typeof address !== 'string') invalid(String(address), 'not a string');
  const match = /^([a-z-]+):\/\/(.*)$/.exec(address);
  if (!match) invalid(address, 'missing scheme://');
  const [, scheme, rest] = match as unknown as [string, string, string];
  switch (scheme) {
    case 'unix':
      if (rest.startsWith('@') && rest.length > 1) return { kind: 'unix', path: `\0${rest.slice(1)}` };
      if (!isAbsolute(rest)) invalid(address, 'unix paths must be absolute (unix:///abs/path)');
      return { kind: 'unix', path: rest };
    case 'tcp':
    case 'tls': {
      const m = /^(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(rest);
      if (!m) invalid(address, `expected ${scheme}://host:port`);
      return { kind: scheme, host: m[1]!.replace(/^\[|\]$/g, ''), port: port(m[2]!, address) };
    }
    case 'vsock': {
      const m = /^(-1|any|\d+):(\d+)$/.exec(rest);
      if (!m) invalid(address, 'expected vsock://CID:PORT (CID -1 or any: every CID, to listen on)');
      const cid = m[1] === '-1' || m[1] === 'any' ? VSOCK_CID_ANY : Number(m[1]);
      if (cid > VSOCK_CID_ANY) invalid(address, `CID ${m[1]} is not 0–${VSOCK_CID_ANY}`);
      // vsock ports are 32-bit; 2^32-1 is VMADDR_PORT_ANY, not a port.
      const p = Number(m[2]);
      if (p < 1 || p >= 0xffffffff) invalid(address, `port ${m[2]} is not 1–${0xffffffff - 1}`);
      return { kind: 'vsock', cid, port: p };
    }
    case 'hvsock': {
      const m = /^(\/.+):(\d+)$/.exec(rest);
      if (!m) invalid(address, 'expected hvsock:///abs/uds:PORT');
      return { kind: 'hvsock', path: m[1]!, port: port(m[2]!, address) };
    }
    case 'virtio-serial':
    case 'serial':
      if (!isAbsolute(rest)) invalid(address, 'expected virtio-serial:///dev/virtio-ports/NAME');
      return { kind: 'serial', path: rest };
    default:
      invalid(address, `unknown scheme ${scheme}`);
  }
}

/** Formats an address back into its string form. */
export function formatAddress(address: Address): string {
  switch (address.kind) {
    case 'unix':
      return address.path.startsWith('\0') ? `unix://@${address.path.slice(1)}` : `unix://${address.path}`;
    case 'tcp':
    case 'tls':
      return `${address.kind}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    case 'vsock':
      return `vsock://${address.cid === VSOCK_CID_ANY ? -1 : address.cid}:${address.port}`;
    case 'hvsock':
      return `hvsock://${address.path}:${address.port}`;
    case 'serial':
      return `virtio-serial://${address.path}`;
  }
}

/** True for a loopback host (127.0.0.0/8, ::1, localhost): traffic that never leaves the machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
