/**
 * `@vaccel/remote`: the guest's RPC plugin — runs ops on a vAccel agent (ours or upstream's) over
 * ttRPC, with failover across agents, shared-memory staging and upstream fallbacks. The wire
 * protocol itself (messages, codecs, transports) is `@vaccel/protocol`.
 * @module
 */
export { DEFAULT_ADDRESS, formatAddress, parseAddress } from '@vaccel/protocol';
export { default, type RemotePluginOptions, remotePlugin } from './plugin.js';
