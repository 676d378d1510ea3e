/**
 * `@vaccel/agent`: the host daemon that runs vAccel operations for guests.
 * @module
 */
export { Agent, type AgentOptions, HEALTH_SERVICE, type ListenOptions } from './agent.js';
export { AgentMetrics } from './metrics.js';
export { type ConnectionLimits, ConnectionState } from './state.js';
