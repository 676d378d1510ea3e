/**
 * `@vaccel/ttrpc`: a ttRPC client and server over any Node Duplex (see PROTOCOL.md).
 * @module
 */
export { ADMIT_FROM, type FrameAdmission } from './admission.js';
export { type CallOptions, Client, type ClientOptions } from './client.js';
export { type Payload, payloadLength } from './envelope.js';
export {
  checkMaxFrame,
  DEFAULT_MAX_FRAME,
  encodeHeader,
  type Frame,
  FrameDecoder,
  FrameFlag,
  FrameType,
  HEADER_SIZE,
  MAX_FRAME_LIMIT,
} from './frame.js';
export {
  type KeyValue,
  type Request,
  RequestSchema,
  type Response,
  ResponseSchema,
  type Status,
  StatusSchema,
} from './gen/ttrpc_pb.js';
export {
  type CallContext,
  type ClientStreamMethod,
  type CloseReason,
  Connection,
  type Method,
  Server,
  type ServerInterceptor,
  type ServerOptions,
  type UnaryHandler,
} from './server.js';
export {
  Code,
  codeName,
  isTtrpcError,
  type StatusReply,
  TtrpcClosedError,
  TtrpcError,
} from './status.js';
export { ALIGN_FROM, ALIGNMENT, alignmentPad, PAD_FIELD, putVarint, varintSize } from './wire.js';
