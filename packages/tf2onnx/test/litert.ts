/**
 * LiteRT.js (the TFLite WASM runtime) in Node, as the oracle of the TFLite converter's tests. Its
 * loader expects a browser worker (`self`, `importScripts`), shimmed here. An unresolved custom op
 * logs an error and still returns garbage: never run a model with one through it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
type LiteRt = typeof import('@litertjs/core');

let loading: Promise<LiteRt> | undefined;

/** Loads LiteRT.js once (WASM CPU accelerator). */
export function liteRt(): Promise<LiteRt> {
  loading ??= (async () => {
    const g = globalThis as Record<string, unknown>;
    g.self ??= globalThis;
    g.importScripts = (file: string) => {
      const m = { exports: {} as unknown };
      new Function('module', 'exports', 'require', '__filename', '__dirname', readFileSync(file, 'utf8'))(
        m,
        m.exports,
        require,
        file,
        dirname(file),
      );
      g.ModuleFactory = m.exports;
    };
    const lib = await import('@litertjs/core');
    await lib.loadLiteRt(`${join(dirname(require.resolve('@litertjs/core/package.json')), 'wasm')}/`);
    return lib;
  })();
  return loading;
}

/** Runs a float32 model through LiteRT.js: one output array per model output. */
export async function runLiteRt(
  model: Uint8Array,
  inputs: readonly { data: Float32Array; shape: readonly number[] }[],
): Promise<Float32Array[]> {
  const lib = await liteRt();
  const compiled = await lib.loadAndCompile(model, { accelerator: 'wasm' });
  try {
    const tensors = inputs.map((i) => new lib.Tensor(i.data, [...i.shape]));
    const outputs = await compiled.run(tensors);
    const arrays = outputs.map((o) => Float32Array.from(o.toTypedArray() as Float32Array));
    for (const t of [...tensors, ...outputs]) t.delete();
    return arrays;
  } finally {
    compiled.delete();
  }
}
