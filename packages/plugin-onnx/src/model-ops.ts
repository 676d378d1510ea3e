/**
 * model_load / model_run / model_unload (and the tf_model_ ones, the same handlers): a guest's
 * model, converted and checked at intake off the thread, loaded once per content on the model
 * host and counted per session that loaded it.
 * @module
 */
import { type ModelInfo, modelHandlers, VaccelError } from '@vaccel/core';
import type { IntakeLimits } from './intake.js';
import { onnxModelOffThread } from './model-formats.js';
import type { ModelHost } from './model-host.js';

interface LoadedModel {
  info: Promise<ModelInfo>;
  refs: number;
}

/** The model op handlers on `host`, and what unloads a session's models or all of them. */
export function modelOps(host: ModelHost, intake: IntakeLimits) {
  const models = new Map<string, LoadedModel>(); // by resource digest
  const loaded = new Map<string, string>(); // `${session}:${resource}` → digest

  const unloadKey = async (key: string): Promise<void> => {
    const digest = loaded.get(key);
    if (digest === undefined) return;
    loaded.delete(key);
    const model = models.get(digest);
    if (model && --model.refs === 0) {
      models.delete(digest);
      await model.info.catch(() => undefined);
      await host.release(digest);
    }
  };

  const model = modelHandlers({
    async load(modelId, ctx) {
      const resource = ctx.resource(modelId);
      const key = `${ctx.session.id}:${modelId}`;
      const what = `model ${modelId}`;
      let entry = models.get(resource.digest);
      if (!entry) {
        const call = { signal: ctx.signal, logger: ctx.logger };
        // The plugin's budget, not the process environment's: a TensorFlow graph's constants are
        // held to the same maxConstantBytes while it converts as its ONNX at intake.
        const info = onnxModelOffThread(resource.blobs, what, {
          signal: ctx.signal,
          maxConstantBytes: intake.maxConstantBytes,
        }).then((bytes) => host.load(resource.digest, bytes, what, call));
        entry = { info, refs: 0 };
        models.set(resource.digest, entry);
        info.catch(() => {
          if (models.get(resource.digest) === entry) models.delete(resource.digest);
        });
      }
      const info = await entry.info;
      if (!loaded.has(key)) {
        loaded.set(key, resource.digest);
        entry.refs++;
      }
      return info;
    },
    async run({ modelId, inputs, outputs }, ctx) {
      const digest = loaded.get(`${ctx.session.id}:${modelId}`);
      const entry = digest === undefined ? undefined : models.get(digest);
      if (!entry)
        throw new VaccelError(
          'EINVAL',
          `model_run: model ${modelId} is not loaded in this session; load it first`,
        );
      await entry.info;
      return host.run(digest!, inputs, outputs, `model ${modelId}`, {
        signal: ctx.signal,
        logger: ctx.logger,
      });
    },
    async unload(modelId, ctx) {
      const key = `${ctx.session.id}:${modelId}`;
      if (!loaded.has(key))
        throw new VaccelError('EINVAL', `model_unload: model ${modelId} is not loaded in this session`);
      await unloadKey(key);
    },
  });

  return {
    handlers: model,
    /** Unloads the models the session with `sessionId` loaded. */
    async releaseSession(sessionId: number): Promise<void> {
      const prefix = `${sessionId}:`;
      await Promise.all([...loaded.keys()].filter((k) => k.startsWith(prefix)).map(unloadKey));
    },
    /** Unloads every model. */
    async close(): Promise<void> {
      for (const key of [...loaded.keys()]) await unloadKey(key);
    },
  };
}
