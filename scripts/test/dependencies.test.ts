// The dependency direction of the workspace (scripts/dependency-graph.mjs): packages depend only on
// inner layers, import only what they declare, and no package or file imports itself back (type
// imports included).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
// @ts-expect-error: a plain script without types
import { cyclesOf, problems } from '../dependency-graph.mjs';

test('every package imports inward, declares what it imports, and nothing imports itself back', () => {
  assert.deepEqual(problems(), []);
});

test('the check sees a cycle through type imports', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-deps-'));
  try {
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'a.ts'), "import type { B } from './b.js';\nexport type A = B;\n");
    writeFileSync(join(dir, 'src', 'b.ts'), "import { a } from './a.js';\nexport type B = number;\n");
    const found = cyclesOf(join(dir, 'src'));
    assert.equal(found.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
