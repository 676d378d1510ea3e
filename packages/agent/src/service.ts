/**
 * The vAccel agent service: each RPC runs through the same @vaccel/core runtime an embedded
 * function uses. Upstream 0.8 semantics (docs/protocol.md §3, §5) plus our extension ops.
 *
 * The handlers live by concern: sessions and resources (session-rpcs.ts), genop (genop.ts),
 * upstream's typed op RPCs (upstream-ops.ts, tensorflow.ts, tensorflow-lite.ts), profiling (profiler.ts); every op
 * goes through one {@link opRunner} (op-runner.ts).
 * @module
 */
import type { Vaccel } from '@vaccel/core';
import type { CallContext } from '@vaccel/ttrpc';
import type { Admission } from './admission.js';
import { genopRpcs } from './genop.js';
import type { AgentMetrics } from './metrics.js';
import { opRunner, runtimeResourceId, type Schedule } from './op-runner.js';
import { profilerRpcs } from './profiler.js';
import { type AgentServiceImpl, connectionOf } from './rpc-context.js';
import { sessionRpcs } from './session-rpcs.js';
import { modelCall, tensorflowRpcs } from './tensorflow.js';
import { tensorflowLiteRpcs } from './tensorflow-lite.js';
import { imageClassificationRpc, unsupportedRpcs } from './upstream-ops.js';

/** Builds the service implementation over a runtime. */
export function agentService(
  vaccel: Vaccel,
  metrics: AgentMetrics,
  opOf: WeakMap<CallContext, string>,
  admission: Admission,
  schedule: Schedule = (_ctx, _op, _bytes, run) => run(),
): AgentServiceImpl {
  const runOp = opRunner(admission, schedule);
  const callModel = modelCall(
    {
      session: (id, ctx) => connectionOf(ctx).session(id),
      model: (session, id, ctx) => runtimeResourceId(connectionOf(ctx), session, id),
      run: runOp,
    },
    opOf,
  );
  return {
    ...sessionRpcs(vaccel, metrics),
    ...imageClassificationRpc(opOf, runOp),
    ...genopRpcs(vaccel, opOf, admission, runOp),
    ...profilerRpcs(),
    ...tensorflowRpcs(callModel),
    ...tensorflowLiteRpcs(callModel),
    ...unsupportedRpcs(),
  };
}
