#!/usr/bin/env node
// `vaccel-bench`; sources are compiled to dist/ by `npm run build` (run by `npm ci`).
let bench;
try {
  bench = await import('../dist/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel-bench: not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await bench.main(process.argv.slice(2));
