#!/usr/bin/env node
// The `vaccel-vsock-backend` daemon; sources are compiled to dist/ by `npm run build` (run by `npm ci`).
let backend;
try {
  backend = await import('../dist/vsock/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel-vsock-backend: not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await backend.main(process.argv.slice(2));
