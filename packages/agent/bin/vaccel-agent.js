#!/usr/bin/env node
// The `vaccel-agent` daemon; sources are compiled to dist/ by `npm run build` (run by `npm ci`).
let agent;
try {
  agent = await import('../dist/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write(
    'vaccel-agent: not built yet; run `npm run build` (or `npm ci`) at the repository root\n',
  );
  process.exit(1);
}
process.exitCode = await agent.main(process.argv.slice(2));
