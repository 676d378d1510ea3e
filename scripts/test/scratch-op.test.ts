/**
 * docs/adding-an-op.md, followed by a test: an op added only to the op table (step 1, done by a
 * module-load hook on op.ts in a child process) and run by a host plugin (step 3) is picked up by
 * every other layer with no change to them (step 4): the table lists it by its snake_case name,
 * the guest's RPC plugin forwards it (to one agent, and across several), uploading the resource at
 * its `resourceArg` first; the agent translates that resource id into its own and runs the op on
 * its plugin; the guest's listing shows it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { opByName } from '@vaccel/core';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/scratch-op/${name}`, import.meta.url));

test('an op added to the op table alone reaches the agent through every layer', () => {
  assert.equal(opByName('scratch_op'), undefined, 'the op exists only where the hook adds it');
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-scratch-op-'));
  try {
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        fixture('register.mjs'),
        '--conditions=@vaccel/source',
        fixture('run.ts'),
        dir,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    const report = JSON.parse(child.stdout);
    assert.deepEqual(report.table, {
      number: 120,
      info: { op: 120, name: 'scratch_op', extension: true, cost: 'compute', resourceArg: 0 },
      listed: true,
    });
    for (const guest of [report.oneAgent, report.twoAgents]) {
      assert.equal(guest.output, 'hctarcs', 'the host plugin ran it on the uploaded resource');
      assert.deepEqual(guest.listed, ['scratch_op']);
    }
    // The host plugin got the resource under the agent's id, not the guest's (2): translated.
    assert.deepEqual(report.host[0], { resourceId: 1, bytes: 'scratch' });
    assert.notEqual(report.host[0].resourceId, report.oneAgent.localId);
    assert.equal(report.host.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
