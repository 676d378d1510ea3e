/**
 * The profiling RPCs: 0.8's GetProfiler and vAccel 0.7.1's GetTimers, both on the session's
 * profiled regions.
 * @module
 */
import type { ServiceImpl } from '@vaccel/protocol';
import type { AgentServiceV071 } from '@vaccel/protocol/service';
import { type AgentServiceImpl, connectionOf } from './rpc-context.js';

/** The component name GetProfiler reports. */
export const PROFILER_NAME = 'vaccel-ts agent';

/** vAccel 0.7.1's GetTimers (service `vaccel.AgentService`): the same regions, 0.7.1's shape. */
export function timersService(): ServiceImpl<(typeof AgentServiceV071)['method']> {
  return {
    async getTimers({ sessionId }, ctx) {
      const regions = await connectionOf(ctx).session(sessionId).profile();
      return { timers: regions.map((r) => ({ name: r.name, samples: r.samples })) };
    },
  };
}

/** GetProfiler: the session's regions under {@link PROFILER_NAME}. */
export function profilerRpcs(): Pick<AgentServiceImpl, 'getProfiler'> {
  return {
    async getProfiler({ sessionId }, ctx) {
      const regions = await connectionOf(ctx).session(sessionId).profile();
      return {
        profiler: {
          componentName: PROFILER_NAME,
          regions: Object.fromEntries(regions.map((r) => [r.name, { samples: r.samples }])),
        },
      };
    },
  };
}
