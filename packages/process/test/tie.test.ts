import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { suite, test } from 'node:test';
import { ORPHAN_GUARD, processAlive, processGone, spawnTied, tie } from '../src/index.js';

const source = new URL('../src/index.ts', import.meta.url).href;

/** A node process that starts a tied `sleep`, prints the sleeper's pid, then waits forever. */
function harness(): { child: ReturnType<typeof spawn>; sleeper: Promise<number> } {
  const code = `import { spawnTied } from ${JSON.stringify(source)};
    const s = spawnTied('sleep', ['1000'], { stdio: 'ignore' });
    console.log(s.pid); setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const sleeper = new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.once('data', (line: string) => resolve(Number(line.trim())));
    child.once('exit', () => reject(new Error('the harness exited before starting its child')));
  });
  return { child, sleeper };
}

suite('tied children die with their parent', () => {
  test('this machine ties children with the parent-death signal (util-linux setpriv)', () => {
    assert.equal(tie(), 'pdeathsig');
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    test(`a harness killed by ${signal} leaves no child running`, async () => {
      const { child, sleeper } = harness();
      const pid = await sleeper;
      assert.ok(processAlive(pid), 'the tied child runs while its parent does');
      child.kill(signal);
      await once(child, 'exit');
      await processGone(pid);
      assert.equal(processAlive(pid), false);
    });
  }

  test('a child whose parent died before the tie was set exits instead of running on', async () => {
    // The guard between setpriv and the command: the child's parent must still be the process
    // that started it. Here it is told another pid (as when the starter died first): it exits
    // 129 without running the command; told this process's pid, it runs the command.
    const orphan = spawn('/bin/sh', ['-c', ORPHAN_GUARD, '1', 'sleep', '1000'], { stdio: 'ignore' });
    const [code] = await once(orphan, 'exit');
    assert.equal(code, 129);
    const child = spawn('/bin/sh', ['-c', ORPHAN_GUARD, String(process.pid), 'echo', 'ran'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    const [status] = await once(child, 'exit');
    assert.deepEqual([status, out], [0, 'ran\n']);
  });

  test('a child still running when this process exits normally is killed', async () => {
    const code = `import { spawnTied } from ${JSON.stringify(source)};
      const s = spawnTied('sleep', ['1000'], { stdio: 'ignore' }); console.log(s.pid); process.exit(0);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    const [status] = await once(child, 'exit');
    assert.equal(status, 0);
    await processGone(Number(out.trim()));
  });

  test('the pid is the command itself, not a wrapper', async () => {
    const child = spawnTied(process.execPath, ['-e', 'console.log(process.pid)'], { stdio: 'pipe' });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    await once(child, 'exit');
    assert.equal(Number(out.trim()), child.pid);
  });
});
