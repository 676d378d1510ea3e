/**
 * The agent's container root filesystem, built from this repository, started the way a container
 * runtime would (new mount and pid namespaces, chroot, uid 10001, a clean environment) and served
 * through a socket in a directory mounted into it. Podman cannot start containers on this kind of
 * machine (crun's setrlimit is refused), so the test uses unshare + chroot on the same rootfs.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ResourceType, tensor, Vaccel } from '@vaccel/core';
import { gemmModel } from '@vaccel/plugin-onnx';
import { spawnTied } from '@vaccel/process';
import { remotePlugin } from '@vaccel/remote';
import { missedObjects } from '../../examples/test/labelled.js';
import { AGENT_BIN, AGENT_UID, buildRootfs, NODE_IN_IMAGE } from '../container/build-rootfs.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const skip =
  process.getuid?.() !== 0
    ? 'the container test needs root (unshare, mount, chroot)'
    : !have('unshare') || !have('chroot')
      ? 'unshare or chroot is missing (util-linux, coreutils)'
      : !existsSync(join(repo, 'packages/agent/dist'))
        ? 'the packages are not built (npm run build)'
        : false;

suite('the agent container rootfs', { skip, timeout: 180_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'vaccel-container-'));
  const rootfs = join(work, 'rootfs');
  const socketDir = join(work, 'run');
  let container: ChildProcess;
  let output = '';

  before(async () => {
    buildRootfs(rootfs);
    spawnSync('mkdir', ['-p', socketDir]);
    chmodSync(socketDir, 0o777);
    // What `podman run -v SOCKETDIR:/run/vaccel` would do: private mounts, its own pid 1, the
    // image's user, no environment from the host.
    const script = [
      `mount --bind ${socketDir} ${rootfs}/run/vaccel`,
      `mount -t proc proc ${rootfs}/proc`,
      `mount --rbind /dev ${rootfs}/dev`,
      `exec env -i HOME=/app "$(command -v chroot)" --userspec=${AGENT_UID}:${AGENT_UID} ${rootfs} ${NODE_IN_IMAGE} ${AGENT_BIN} --address unix:///run/vaccel/agent.sock`,
    ].join(' && ');
    container = spawnTied(
      'unshare',
      ['--mount', '--pid', '--fork', '--propagation', 'private', '--kill-child=SIGTERM', 'sh', '-c', script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    // Until the agent says it is ready, or its container exits.
    await new Promise<void>((resolve) => {
      const seen = (d: Buffer) => {
        output += d;
        if (/"msg":"ready"/.test(output)) resolve();
      };
      container.stdout!.on('data', seen);
      container.stderr!.on('data', seen);
      container.once('close', () => resolve()); // exited, and its output is all read
    });
    assert.match(output, /"msg":"ready"/, `the agent did not start in the rootfs:\n${output}`);
  });

  after(async () => {
    // unshare waits for its child and ignores SIGTERM itself: stop the agent (pid 1 inside) as a
    // runtime's `stop` would, and unshare exits with it.
    // (Unless it already exited: a failed start, which before() reported.)
    if (container.exitCode === null && container.signalCode === null) {
      const exited = new Promise((resolve) => container.once('exit', resolve));
      spawnSync('pkill', ['-TERM', '-P', String(container.pid)]);
      await exited;
    }
    assert.match(output, /"msg":"stopped"/, 'the agent drained and stopped on SIGTERM');
    rmSync(work, { recursive: true, force: true });
  });

  test('serves detection and SGEMM through the mounted socket, as uid 10001', async () => {
    const socket = join(socketDir, 'agent.sock');
    assert.equal(statSync(socket).uid, AGENT_UID);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: `unix://${socket}` })] });
    await using session = await vaccel.createSession();
    const { result } = await session.imageDetect(
      new Uint8Array(readFileSync(join(repo, 'examples/images/dog.jpg'))),
    );
    // The labelled dog, bicycle and truck (a car to the shipped detectors), where labels.json boxes them.
    assert.deepEqual(missedObjects('dog.jpg', result), []);
    const c = await session.sgemm({
      m: 2,
      n: 2,
      k: 2,
      a: new Float32Array([1, 2, 3, 4]),
      b: new Float32Array([5, 6, 7, 8]),
    });
    assert.deepEqual([...c], [19, 22, 43, 50]);
    // A guest's own model loads and runs in a contained runner (prlimit and setpriv are in the image).
    await using model = await vaccel.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'gemm.onnx', data: gemmModel(2, 2, 2, 1, 0) }],
    });
    session.registerResource(model);
    await session.modelLoad(model);
    const { Y } = await session.modelRun(model, {
      A: tensor('float32', [2, 2], new Float32Array([1, 2, 3, 4])),
      B: tensor('float32', [2, 2], new Float32Array([5, 6, 7, 8])),
    });
    assert.deepEqual([...(Y!.data as Float32Array)], [19, 22, 43, 50]);
    // The image holds only what the agent needs: no shell, one platform's ONNX Runtime.
    assert.ok(!existsSync(join(rootfs, 'bin/sh')));
    assert.ok(!existsSync(join(rootfs, 'app/node_modules/onnxruntime-node/bin/napi-v6/win32')));
  });
});
