#!/usr/bin/env node
// The `vaccel` command. The TypeScript sources are compiled to dist/ by `npm run build`, which
// `npm ci` runs through the root `prepare` script.
let cli;
try {
  cli = await import('../dist/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel: the CLI is not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
