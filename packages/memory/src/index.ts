/**
 * `@vaccel/memory`: the native pieces shared memory needs (sealed memfds, mmap/munmap, descriptor
 * passing and peer credentials on unix sockets, eventfds, a readiness watcher), for the agent,
 * guests and the vhost-user backend. Optional everywhere: without the addon, data moves in-band.
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
