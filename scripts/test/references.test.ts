/**
 * Every reference a reader can follow stays inside the repository: relative links in the
 * Markdown resolve to files that exist, and nothing in docs, sources or protos points at the
 * design notes beside the repository (`../shared/*.md`, e.g. PROTOCOL.md §n) — the wire facts the
 * code relies on are in docs/protocol.md and packages/ttrpc/PROTOCOL.md.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', '.git', 'results']);

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (/\.(md|ts|mts|mjs|js|proto|go|c|h)$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
      yield path;
  }
}

test('relative links in the Markdown resolve inside the repository', () => {
  const broken: string[] = [];
  for (const file of files(root)) {
    if (!file.endsWith('.md')) continue;
    for (const [, target] of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
      const path = target!.split('#')[0]!;
      if (!path || /^[a-z]+:/.test(path)) continue;
      const to = resolve(dirname(file), path);
      if (!existsSync(to) || relative(root, to).startsWith('..'))
        broken.push(`${relative(root, file)} → ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('no doc, source or proto points at notes outside the repository', () => {
  const outside: string[] = [];
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8');
    for (const [found] of text.matchAll(/shared\/(?:PROTOCOL|DESIGN|STYLE|MODEL)\.md|PROTOCOL\.md §/g))
      if (!file.endsWith('references.test.ts')) outside.push(`${relative(root, file)}: ${found}`);
  }
  assert.deepEqual(outside, []);
});
