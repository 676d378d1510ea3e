/**
 * `@vaccel/remote`: vAccel over ttRPC — messages, addresses, transports and the RPC plugin.
 * @module
 */
export {
  type Address,
  DEFAULT_ADDRESS,
  formatAddress,
  isLoopback,
  parseAddress,
  VSOCK_CID_ANY,
} from './address.js';
export { detailErrno, ERROR_TYPE_URL, errorDetail, errorFromRpc, statusFromError } from './errors.js';
export { AgentService as AgentServiceV071 } from './gen/agent_v071_pb.js';
export type { Arg as GenArg } from './gen/genop_pb.js';
export { ArgSchema as GenArgSchema, RequestSchema as GenopRequestSchema } from './gen/genop_pb.js';
export { SharedMemory as SharedMemoryService } from './gen/shared_memory_pb.js';
export {
  type DecodedArg,
  decodeGenopRequest,
  decodeGenopResponse,
  encodeGenopRequest,
  encodeGenopResponse,
  fromWireArg,
  type GenopEncodeOptions,
  refWireArg,
  type SharedRef,
  toWireArg,
  type WireArg,
} from './genop-codec.js';
export { default, type RemotePluginOptions, remotePlugin } from './plugin.js';
/** @internal TCP_QUICKACK after each read (tests and the bench drive it directly). */
export { quickAckOnRead, tcpDescriptor } from './quick-ack.js';
export { openSerialPort } from './serial.js';
export {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  type ServiceClient,
  type ServiceImpl,
  SyncAgentService,
  serviceClient,
  serviceHandlers,
} from './service.js';
export {
  TF_DATA_TYPES,
  tfNode,
  tfTensorFromWire,
  tfTensorName,
  tfTensorToWire,
  type WireTfTensor,
} from './tf-tensors.js';
export {
  type ConnectOptions,
  connect,
  type ListenOptions,
  listen,
  PRIVATE_SOCKET_MODE,
  type TlsClientOptions,
  type TlsServerOptions,
  withUmask,
} from './transport.js';
