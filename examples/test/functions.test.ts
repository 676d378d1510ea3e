/**
 * The example functions, run as users run them (one command each), embedded and offloaded to an
 * agent this test starts; both give the same answers.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '@vaccel/process';
import { type RunningAgent, startAgent, tempDir } from '../../packages/agent/test/helpers.js';
import { type FoundObject, missedObjects } from './labelled.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dog = readFileSync(join(root, 'examples/images/dog.jpg'));
const cat = readFileSync(join(root, 'examples/images/cat.jpg'));

let agent: RunningAgent;
let address: string;
before(async () => {
  address = `unix://${join(tempDir(), 'agent.sock')}`;
  agent = await startAgent(['-a', address]);
});
after(async () => assert.equal(await agent.stop(), 0));

const env = (offloaded: boolean) => ({
  ...process.env,
  VACCEL_RPC_ADDRESS: offloaded ? address : '',
  VACCEL_LOG_LEVEL: 'error',
});

suite('batch-function', () => {
  const run = (offloaded: boolean, ...args: string[]) =>
    spawnSync(process.execPath, [join(root, 'examples/batch-function/index.mjs'), ...args], {
      encoding: 'utf8',
      env: env(offloaded),
      timeout: 60_000,
    });

  test('sgemm then AES-GCM round trip, in-process and on the agent, same product', () => {
    const here = run(false, '--n', '96');
    const there = run(true, '--n', '96');
    assert.equal(here.status, 0, here.stderr);
    assert.equal(there.status, 0, there.stderr);
    const [a, b] = [JSON.parse(here.stdout), JSON.parse(there.stdout)];
    assert.deepEqual([a.where, b.where], ['in-process', 'agent']);
    assert.equal(a.checksum, b.checksum);
    assert.ok(a.intact && b.intact);
    assert.equal(a.encryptedBytes, 96 * 96 * 4);
    const bad = run(false, '--n', 'lots');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--n must be an integer/);
  });
});

/** Starts the HTTP function and resolves with its base URL once it says it listens. */
function startHttp(offloaded: boolean): Promise<{ url: string; child: ChildProcess }> {
  const child = spawnTied(process.execPath, [join(root, 'examples/http-function/index.mjs')], {
    env: { ...env(offloaded), PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening on (http:\/\/\S+)/.exec(d.toString());
      if (m) resolve({ url: m[1]!, child });
    });
    child.once('exit', (code) => reject(new Error(`the HTTP function exited ${code}: ${stderr}`)));
  });
}

for (const offloaded of [false, true]) {
  suite(`http-function (${offloaded ? 'offloaded to the agent' : 'embedded'})`, () => {
    let url: string;
    let child: ChildProcess;
    before(async () => {
      ({ url, child } = await startHttp(offloaded));
    });
    after(() => child.kill('SIGTERM'));

    test('POST /detect, /detect?annotate=1, /classify; bad bodies get clear 4xx', async () => {
      const post = (path: string, body: Uint8Array) => fetch(`${url}${path}`, { method: 'POST', body });
      const detected = await post('/detect', dog);
      assert.equal(detected.status, 200);
      const { objects } = (await detected.json()) as { objects: FoundObject[] };
      // The labelled dog, bicycle and truck (a car to the shipped detectors), where labels.json boxes them.
      assert.deepEqual(missedObjects('dog.jpg', objects), []);
      const annotated = await post('/detect?annotate=1', dog);
      assert.equal(annotated.headers.get('content-type'), 'image/jpeg');
      assert.deepEqual([...new Uint8Array(await annotated.arrayBuffer()).subarray(0, 3)], [0xff, 0xd8, 0xff]);
      const classified = (await (await post('/classify?top=2', cat)).json()) as { classes: unknown[] };
      assert.equal(classified.classes.length, 2);
      const junk = await post('/detect', new TextEncoder().encode('not an image'));
      assert.equal(junk.status, 400);
      assert.equal(((await junk.json()) as { error: string }).error, 'EINVAL');
      assert.equal((await post('/detect', new Uint8Array())).status, 400);
      assert.equal((await fetch(`${url}/nowhere`)).status, 404);
      assert.equal(await (await fetch(`${url}/healthz`)).text(), 'ok\n');
    });
  });
}
