/**
 * What every part of the agent service shares: the type of its handlers and the connection
 * state a call belongs to.
 * @module
 */
import type { ServiceImpl } from '@vaccel/protocol';
import type { AgentService } from '@vaccel/protocol/service';
import type { CallContext } from '@vaccel/ttrpc';
import type { ConnectionState } from './state.js';

/** The handlers of the full (async build's) agent service; each module implements some of them. */
export type AgentServiceImpl = ServiceImpl<(typeof AgentService)['method']>;

/** The state of the connection a call came in on (agent.ts sets it when the connection opens). */
export const connectionOf = (ctx: CallContext): ConnectionState => ctx.connection.context as ConnectionState;
