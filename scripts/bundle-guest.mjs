#!/usr/bin/env node
// Bundles the guest entry (`@vaccel/remote/guest`: @vaccel/core + the RPC plugin) into one
// tree-shaken ES module with lazily loaded chunks, packages/remote/dist/guest/: a cold guest
// process loads a few files instead of ~200 modules (see docs/deploy.md, `vaccel-bench coldstart`).
// Runs after `tsc -b` in `npm run build`.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}packages/remote/dist/guest`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [
    { in: `${root}packages/remote/src/guest.ts`, out: 'guest' },
    // sgemm-js starts its workers from './worker.js' beside the module that holds its pool.
    { in: `${root}packages/core/src/plugins/sgemm-js/worker.ts`, out: 'chunks/worker' },
  ],
  outdir,
  bundle: true,
  splitting: true, // dynamic imports (builtin plugins, generated descriptors) stay separate chunks
  format: 'esm',
  platform: 'node',
  target: 'node20',
  conditions: ['@vaccel/source'],
  // The native addon is optional and loaded only when a shared region is asked for.
  external: ['@vaccel/memory'],
  chunkNames: 'chunks/[name]-[hash]',
  legalComments: 'none',
  sourcemap: true,
  logLevel: 'warning',
});
