/**
 * `@vaccel/vhost-user`: vhost-user device backends for QEMU on one framework ({@link VhostDevice}
 * with a {@link DeviceModel}, served by {@link VhostUserServer}): a virtio-crypto device for
 * `cryptodev-vhost-user` (the guest's `virtio_crypto` driver hands AES requests to the host, run
 * with the host's OpenSSL or any vAccel plugin) and a virtio-vsock device for
 * `vhost-user-vsock-pci` with Firecracker's hybrid vsock ({@link VsockBackend}). Protocol logic is
 * TypeScript; a small N-API addon does the syscalls Node lacks (descriptor passing, mmap, eventfd).
 *
 * ```ts
 * await using backend = await CryptoBackend.listen({ socket: '/run/vaccel-crypto.sock' });
 * // qemu … -chardev socket,id=c0,path=/run/vaccel-crypto.sock \
 * //   -object cryptodev-vhost-user,id=cryptodev0,chardev=c0 \
 * //   -device virtio-crypto-pci,cryptodev=cryptodev0 \
 * //   -object memory-backend-memfd,id=mem,size=1G,share=on -machine memory-backend=mem
 * ```
 * @module
 */

export { type Native, native, type Received, type Watcher } from '@vaccel/memory';
export {
  CryptoDevice,
  DEVICE_FEATURES,
  type DeviceCounters,
  MAX_SESSIONS,
  MAX_VRINGS,
  PROTOCOL_FEATURES,
} from './crypto-device.js';
export { type CipherEngine, opensslEngine, type VaccelEngineOptions, vaccelEngine } from './engine.js';
export { type Completion, GUEST_BASE, LoopbackFrontend, LoopbackRing, USER_BASE } from './loopback.js';
export { GuestMemory, type MemoryRegion } from './memory.js';
export * from './protocol.js';
export { type BackendStats, CryptoBackend, type CryptoBackendOptions } from './server.js';
export { type DeviceModel, RING_FEATURES, VhostDevice } from './vhost-device.js';
export { Connection, VhostUserServer, type VhostUserServerOptions } from './vhost-server.js';
export * from './virtio-crypto.js';
export * from './virtqueue.js';
export { type RingService, Vring } from './vring.js';
export { VsockBackend, type VsockBackendOptions, type VsockStats } from './vsock/backend.js';
export { type VsockCounters, VsockDevice, type VsockDeviceOptions } from './vsock/device.js';
export * as vsockPacket from './vsock/packet.js';
