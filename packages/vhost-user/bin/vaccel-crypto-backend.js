#!/usr/bin/env node
// The `vaccel-crypto-backend` daemon; sources are compiled to dist/ by `npm run build` (run by `npm ci`).
let backend;
try {
  backend = await import('../dist/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel-crypto-backend: not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await backend.main(process.argv.slice(2));
