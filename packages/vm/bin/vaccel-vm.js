#!/usr/bin/env node
// `vaccel-vm`; sources are compiled to dist/ by `npm run build` (run by `npm ci`).
let vm;
try {
  vm = await import('../dist/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel-vm: not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await vm.main(process.argv.slice(2));
