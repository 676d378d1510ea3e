/**
 * `vaccel-vm`: a real VM guest that offloads to the host agent.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { consoleReport, writeResult } from '@vaccel/bench/kit';
import { Vaccel } from '@vaccel/core';
import { hostPlugins } from '@vaccel/plugin-onnx';
import { CryptoBackend } from '@vaccel/vhost-user';
import pino from 'pino';
import { buildGuest } from './build.js';
import { fig2VirtioCrypto } from './fig2-virtio-crypto.js';
import { figureInVm } from './figure-vm.js';
import { jsonFromOutput, runInGuest } from './run.js';
import { transportsVm } from './transports.js';

const usage = `Usage: vaccel-vm <build|run|demo|bench> [options] [-- guest command]

  build            fetch Debian's kernel and busybox-static (apt), pack node and the guest packages
                   into an initramfs under the cache folder
  run -- CMD ...   boot the guest (QEMU; KVM when a probe guest runs, else TCG), run CMD in it with
                   VACCEL_RPC_ADDRESS on a host vaccel-agent (--transport), stream its output,
                   power off and exit with CMD's exit code; 'vaccel' runs the vaccel CLI
  demo             classify /examples/cat.jpg in the guest and compare with the host's in-process result
  bench fig2       fig2 as first published: the guest kernel encrypts through its virtio-crypto
                   device (vaccel-crypto-backend) against the host's openssl speed (needs openssl)
  bench fig4       SGEMM from the guest, in-band over virtio-serial and over ivshmem (--shm), against
                   the host's in-process SGEMM measured by the same command (--transport vsock:
                   the guest's calls cross virtio-vsock instead)
  bench fig7       the same for image classification vs image size
  bench transports noop round trips from one guest over virtio-serial and virtio-vsock, interleaved

Options:
  --transport T    serial (default): virtio-serial ports to the agent; vsock: only a virtio-vsock
                   device (vhost-user-vsock-pci served by vaccel-vsock-backend in this process, with
                   Firecracker's hybrid vsock): the guest uses vsock://2:2048, the agent listens on
                   unix://<uds>_2048 as on a Firecracker host
  --virtio-crypto  give the guest a virtio-crypto device served by vaccel-crypto-backend (vhost-user,
                   in this process): its kernel's virtio_crypto_aes_cbc runs AES on the host, e.g.
                   run --virtio-crypto -- kcapi-enc -c virtio_crypto_aes_cbc ...
  --shm MIB        give the guest an ivshmem-plain device of MIB MiB (a power of two; default 256)
                   that the host agent maps too: the guest's data goes through it, only calls
                   cross virtio-serial
  --no-shm         no ivshmem device: data goes in-band over virtio-serial
  --quick, --reps N, --out DIR   as for vaccel-bench (bench only)
  --cache DIR      where the guest is built (default .vm/ at the repository root)
  --rebuild        rebuild the initramfs even if present
  --timeout S      give up after S seconds (default 300)
  -h, --help       this help

Environment:
  VACCEL_VM_ACCEL  auto (default: KVM only if a probe guest runs under it, else TCG), kvm or tcg

Needs qemu-system-x86_64 (apt-get install qemu-system-x86) and apt-get/dpkg-deb for the build.`;

const root = fileURLToPath(new URL('../../../', import.meta.url));

function ensureQemu(): void {
  if (spawnSync('qemu-system-x86_64', ['--version']).status === 0) return;
  throw new Error(
    'qemu-system-x86_64 is not installed; run: apt-get install -y --no-install-recommends qemu-system-x86',
  );
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        cache: { type: 'string' },
        rebuild: { type: 'boolean', default: false },
        'virtio-crypto': { type: 'boolean', default: false },
        transport: { type: 'string', default: 'serial' },
        shm: { type: 'string', default: '256' },
        quick: { type: 'boolean', default: false },
        reps: { type: 'string' },
        out: { type: 'string' },
        'no-shm': { type: 'boolean', default: false },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  try {
    parsed = parse(argv);
  } catch (error) {
    process.stderr.write(`vaccel-vm: ${(error as Error).message}\n\n${usage}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [verb, ...rest] = positionals;
  if (values.help || !verb) {
    process.stdout.write(`${usage}\n`);
    return values.help ? 0 : 2;
  }
  const cacheDir = values.cache ?? join(root, '.vm');
  const timeoutSeconds = values.timeout ? Number(values.timeout) : 300;
  const sharedMemoryMiB = values['no-shm'] ? 0 : Number(values.shm);
  const log = (line: string) => process.stderr.write(`vaccel-vm: ${line}\n`);
  const transport = values.transport;
  if (transport !== 'serial' && transport !== 'vsock') {
    process.stderr.write(`vaccel-vm: --transport is serial or vsock, got ${transport}\n`);
    return 2;
  }
  try {
    if (verb === 'build') {
      await buildGuest(cacheDir, { rebuild: values.rebuild, log });
      return 0;
    }
    ensureQemu();
    const image = await buildGuest(cacheDir, { rebuild: values.rebuild, log });
    if (verb === 'bench') {
      const [figure, ...more] = rest;
      if (!['fig2', 'fig4', 'fig7', 'transports'].includes(figure ?? '') || more.length > 0)
        throw new Error(
          'bench takes fig2 (through virtio-crypto), fig4 or fig7 (in-band and over ivshmem) or transports (serial vs vsock)',
        );
      const reps = values.reps === undefined ? (values.quick ? 3 : 5) : Number(values.reps);
      if (!Number.isSafeInteger(reps) || reps < 1)
        throw new Error(`--reps must be a positive integer, got ${values.reps}`);
      const options = { reps, quick: values.quick, cacheDir };
      const result =
        figure === 'fig2'
          ? await fig2VirtioCrypto(options)
          : figure === 'transports'
            ? await transportsVm(options)
            : await figureInVm(figure as 'fig4' | 'fig7', {
                ...options,
                sharedMemoryMiB: sharedMemoryMiB || 256,
                transport,
              });
      process.stdout.write(`\n${consoleReport(result)}`);
      if (values.out)
        for (const file of await writeResult(values.out, result)) process.stdout.write(`wrote ${file}\n`);
      return 0;
    }
    if (verb === 'run') {
      if (rest.length === 0) throw new Error('run needs a guest command after --');
      if (!values['virtio-crypto']) {
        const run = await runInGuest(image, rest, { timeoutSeconds, sharedMemoryMiB, transport });
        const { received, sent } = run.agentBytes;
        log(
          run.vsock
            ? `the agent received ${received} and sent ${sent} payload bytes on ${run.vsock.agentAddress}; the vsock backend carried ${run.vsock.bytesFromGuest} bytes from the guest and ${run.vsock.bytesToGuest} to it over ${run.vsock.connections} connection(s)${sharedMemoryMiB > 0 ? ' (big data went through the ivshmem device; --no-shm sends it over vsock too)' : ''}`
            : `the agent received ${received} and sent ${sent} payload bytes over virtio-serial`,
        );
        return run.exitCode;
      }
      const dir = mkdtempSync(join(tmpdir(), 'vaccel-vm-'));
      try {
        // Only problems are worth a line next to the guest's own output.
        const logger = pino({ level: 'warn', base: { name: 'vaccel-crypto-backend' } }, pino.destination(2));
        await using backend = await CryptoBackend.listen({ socket: join(dir, 'crypto.sock'), logger });
        return (
          await runInGuest(image, rest, {
            timeoutSeconds,
            cryptoSocket: backend.socket,
            sharedMemoryMiB,
            transport,
          })
        ).exitCode;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (verb === 'demo') {
      log('booting the guest to classify /examples/cat.jpg through the host agent');
      const guest = await runInGuest(image, ['vaccel', 'classify', '--json', '/examples/cat.jpg'], {
        timeoutSeconds,
        onLine: () => {},
      });
      if (guest.exitCode !== 0) throw new Error(`the guest failed (${guest.exitCode}):\n${guest.output}`);
      const fromGuest = jsonFromOutput<{ classes: { label: string; score: number }[] }>(guest.output);
      await using vaccel = await Vaccel.open({ plugins: hostPlugins() });
      await using session = await vaccel.createSession();
      const onHost = await session.imageClassify(readFileSync(join(root, 'examples', 'images', 'cat.jpg')));
      const show = (classes: { label: string; score: number }[]) =>
        classes.map((c) => `${(c.score * 100).toFixed(2).padStart(6)}%  ${c.label}`).join('\n');
      process.stdout.write(
        `guest (in the VM, through the agent):\n${show(fromGuest.classes)}\n\nhost (in-process):\n${show(onHost)}\n`,
      );
      const equal = JSON.stringify(fromGuest.classes) === JSON.stringify(onHost);
      process.stdout.write(
        equal ? '\nequal: the guest got exactly the host result\n' : '\nDIFFERENT results\n',
      );
      return equal ? 0 : 1;
    }
    throw new Error(`unknown verb ${verb}`);
  } catch (error) {
    process.stderr.write(`vaccel-vm: ${(error as Error).message}\n`);
    return 1;
  }
}
