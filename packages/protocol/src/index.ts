/**
 * `@vaccel/protocol`: the vAccel 0.8 wire protocol as both ends speak it — addresses and
 * transports, the genop codec, errors on the wire and the light agent stub. None of it loads
 * protobuf-es's reflection runtime or a generated descriptor; the typed service binder and the
 * generated services are `@vaccel/protocol/service`.
 * @module
 */
export {
  ADDRESS_FORMS,
  type Address,
  DEFAULT_ADDRESS,
  formatAddress,
  isLoopback,
  parseAddress,
  VSOCK_CID_ANY,
} from './address.js';
export { decodeOrBadMessage } from './bad-message.js';
export {
  type CodecMap,
  HAND_CODECS,
  handDecoder,
  handEncoder,
  MESSAGE,
  type MessageCodec,
  type UploadBlob,
} from './codecs.js';
export { detailErrno, ERROR_TYPE_URL, errorDetail, errorFromRpc, statusFromError } from './errors.js';
export type { Arg as GenArg } from './gen/genop_pb.js';
export {
  decodeGenopRequest,
  decodeGenopResponse,
  encodeGenopRequest,
  encodeGenopResponse,
  type GenopEncodeOptions,
} from './genop-codec.js';
export { AGENT_SERVICE, type AgentStub, agentStub } from './light-client.js';
/** @internal The optional native addon (`@vaccel/memory`), loaded on first need. */
export { addon, closeQuietly, loadAddon, mapIvshmem } from './memory-addon.js';
/** @internal TCP_QUICKACK after each read (tests and the bench drive it directly). */
export { quickAckOnRead, tcpDescriptor } from './quick-ack.js';
export { openSerialPort } from './serial.js';
export type { ServiceClient, ServiceImpl } from './service.js';
export {
  TF_DATA_TYPES,
  TFLITE_DATA_TYPES,
  tfliteTensorFromWire,
  tfliteTensorToWire,
  tfNode,
  tfTensorFromWire,
  tfTensorName,
  tfTensorToWire,
  type WireTfliteTensor,
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
export {
  type DecodedArg,
  fromWireArg,
  refWireArg,
  type SharedRef,
  toWireArg,
  type WireArg,
} from './wire-arg.js';
