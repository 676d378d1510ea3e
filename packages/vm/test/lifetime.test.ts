import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { processAlive, processGone } from '@vaccel/process';
import { buildGuest } from '../src/build.js';
import { SUITE_TIMEOUT_MS, vmSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/boot-forever.ts', import.meta.url));

/** `ps` lines of these pids that are still running (not zombies). */
const running = (...pids: number[]): string[] =>
  spawnSync('ps', ['-o', 'pid=,stat=,args=', '-p', pids.join(',')], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((line) => line.trim() && !/^\s*\d+\s+Z/.test(line));

suite('nothing the VM harness starts outlives it', {
  skip: vmSkipReason(),
  timeout: SUITE_TIMEOUT_MS,
}, () => {
  before(async () => {
    await buildGuest(`${root}.vm`);
  });

  test('the harness killed by SIGKILL mid-boot leaves no QEMU and no agent', async () => {
    const harness = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@vaccel/source', fixture, `${root}.vm`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    harness.stderr!.on('data', (d) => {
      stderr += d;
    });
    const started = await new Promise<{ qemu: number; agent: number; accelerator: string }>(
      (resolve, reject) => {
        harness.stdout!.setEncoding('utf8');
        harness.stdout!.once('data', (line: string) => resolve(JSON.parse(line)));
        harness.once('exit', (code) => reject(new Error(`the harness exited with ${code}: ${stderr}`)));
      },
    );
    assert.ok(processAlive(started.qemu) && processAlive(started.agent), 'QEMU and the agent run');
    // It says which accelerator runs the guest, and why.
    assert.match(stderr, /vaccel-vm: the guest runs under (KVM|TCG \(software emulation\)): .+/);
    harness.kill('SIGKILL');
    await once(harness, 'exit');
    await processGone(started.qemu);
    await processGone(started.agent);
    assert.deepEqual(running(started.qemu, started.agent), []);
  });
});
