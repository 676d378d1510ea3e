#!/usr/bin/env node
// Runs every packages/*/test/**/*.test.ts (and examples/test, deploy/test, scripts/test) with node:test through tsx, on the TypeScript sources
// (the `@vaccel/source` export condition), so tests never depend on a stale build.
// Usage: node scripts/run-tests.mjs [path-filter …] [-- extra node --test flags]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dash = process.argv.indexOf('--');
const filters = (dash === -1 ? process.argv.slice(2) : process.argv.slice(2, dash)).filter(Boolean);
const extra = dash === -1 ? [] : process.argv.slice(dash + 1);

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith('.test.ts')) yield path;
  }
}

const files = [
  ...readdirSync(join(root, 'packages')).map((pkg) => join(root, 'packages', pkg, 'test')),
  join(root, 'examples', 'test'),
  join(root, 'deploy', 'test'),
  join(root, 'scripts', 'test'),
]
  .flatMap((dir) => {
    try {
      return [...walk(dir)];
    } catch {
      return [];
    }
  })
  .map((file) => relative(root, file))
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();

if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const tsx = join(root, 'node_modules', '.bin', 'tsx');
// A hang must fail its test, never stall the run (and CI) forever. It guards each test and each
// test file as a whole; a guard, not a speed check: VM tests under TCG on a busy machine take many
// minutes, and a test that needs less sets its own.
const timeout = extra.some((a) => a.startsWith('--test-timeout')) ? [] : ['--test-timeout=1800000'];
const result = spawnSync(tsx, ['--conditions=@vaccel/source', '--test', ...timeout, ...extra, ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
