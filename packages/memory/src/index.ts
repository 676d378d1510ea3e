/**
 * `@vaccel/memory`: the native pieces shared memory needs (sealed memfds, mmap/munmap, descriptor
 * passing and peer credentials on unix sockets, eventfds, a readiness watcher), for the agent,
 * guests and the vhost-user backend, and AF_VSOCK sockets as `net.Socket`/`net.Server` (Node has
 * none). Optional everywhere: without the addon, data moves in-band.
 * @module
 */
export {
  closeQuietly,
  keepFreedMemory,
  type Native,
  native,
  nativeAvailable,
  type Received,
  type Watcher,
} from './native.js';
export {
  adoptServer,
  adoptSocket,
  connectVsock,
  listenVsock,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_PORT_ANY,
  type VsockConnectOptions,
  type VsockListenOptions,
  vsockUnavailable,
} from './vsock.js';
