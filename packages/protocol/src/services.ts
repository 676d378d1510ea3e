/**
 * `@vaccel/protocol/service`: the generated vAccel services and the binder that serves or calls
 * them over @vaccel/ttrpc. Loading it loads protobuf-es and every generated descriptor; a guest
 * that needs only the four everyday RPCs uses the light stub in `@vaccel/protocol` instead.
 * @module
 */
export { AgentService as AgentServiceV071 } from './gen/agent_v071_pb.js';
export { ArgSchema as GenArgSchema, RequestSchema as GenopRequestSchema } from './gen/genop_pb.js';
export { SharedMemory as SharedMemoryService } from './gen/shared_memory_pb.js';
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
