/**
 * fig2 through virtio-crypto (`vaccel-vm bench fig2`): the original Figure 2 setup.
 * A QEMU guest encrypts with its kernel's virtio-crypto driver — `openssl speed -engine afalg`,
 * AF_ALG → `virtio_crypto_aes_cbc` → vhost-user → our `CryptoBackend` → host OpenSSL — and the host
 * runs `openssl speed` on the same cipher and chunk sizes, in the same run. The guest's own
 * software AES (`openssl speed` in the VM without the engine) is measured too, for reference.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Baseline,
  compareWith,
  describeMachine,
  type FigureOptions,
  type FigureResult,
  formatBytes,
  type Point,
  Progress,
  summarize,
} from '@vaccel/bench/kit';
import { aesCbcRequestHeader, CryptoBackend, Direction, LoopbackFrontend } from '@vaccel/vhost-user';
import pino from 'pino';
import { type Accelerator, describeAccelerator } from './accel.js';
import { buildGuest } from './build.js';
import { runInGuest } from './run.js';

export const HOST = 'host openssl';
export const OFFLOAD = 'guest virtio-crypto';
export const SOFTWARE = 'guest software AES';
export const LOOPBACK = 'backend alone (no VM)';
/**
 * What the device path is compared with: the backend that serves it, alone (what the VM, its
 * kernel and virtio add), and the guest's own AES (offloading or not, in the same VM). Never host
 * OpenSSL: `openssl speed` is a native loop with none of a request's costs, so a ratio to it
 * (1 to 10⁴ here) would measure the requests and the emulator, not the path. The runs come one
 * after the other: ratios of the medians.
 */
export const BASELINES: Baseline[] = [
  { series: LOOPBACK, paths: [OFFLOAD], paired: false },
  { series: SOFTWARE, paths: [OFFLOAD], paired: false },
];
const CIPHER = 'aes-128-cbc';
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** MB/s from `openssl speed -mr` output (its `+F:` line is bytes per second for -bytes). */
export function parseSpeed(output: string): number | undefined {
  const bytesPerSecond = /^\+F:\d+:[^:]+:([\d.]+)/m.exec(output)?.[1];
  return bytesPerSecond === undefined ? undefined : Number(bytesPerSecond) / 1e6;
}

/** The `openssl speed` flags every sample uses, on the host and in the guest: one 1-second run. */
const SPEED_FLAGS = ['-evp', CIPHER, '-seconds', '1', '-elapsed', '-mr'];
const speedArgs = (size: number, decrypt: boolean) => [
  'speed',
  ...(decrypt ? ['-decrypt'] : []),
  ...['-bytes', String(size), ...SPEED_FLAGS],
];

/** Runs fig2 through a VM's virtio-crypto device. */
export async function fig2VirtioCrypto(
  options: FigureOptions & { cacheDir?: string },
): Promise<FigureResult> {
  const { reps, quick } = options;
  for (const [tool, args] of [
    ['qemu-system-x86_64', ['--version']],
    ['openssl', ['version']],
  ] as const)
    if (spawnSync(tool, args).status !== 0)
      throw new Error(
        `${tool} is not installed (apt-get install ${tool === 'openssl' ? 'openssl' : 'qemu-system-x86'})`,
      );
  // Up to 64 KiB: past the guest's AF_ALG socket buffer (~208 KiB), the afalg engine's splice
  // stalls inside the guest for about a second per operation, which would measure the guest kernel.
  const sizes = quick ? [64, 1024, 16384, 65536] : [64, 256, 1024, 4096, 16384, 65536];
  const image = await buildGuest(options.cacheDir ?? join(root, '.vm'));
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-fig2-'));
  const samples = new Map<string, number[]>();
  const add = (series: string, metric: string, size: number, value: number | undefined) => {
    if (value === undefined || !Number.isFinite(value))
      throw new Error(`no ${series} ${metric} figure for ${size} bytes`);
    const key = `${series}\n${metric}\n${size}`;
    samples.set(key, [...(samples.get(key) ?? []), value]);
  };
  const progress = new Progress('fig2 virtio-crypto', 3);
  let served = 0;
  let accelerator: Accelerator = 'tcg';
  try {
    // One boot for every guest sample (kept short: the script rides on the kernel command line).
    progress.step(`guest: ${reps} reps × ${sizes.length} sizes × 2 directions × 2 paths`);
    const backend = await CryptoBackend.listen({
      socket: join(dir, 'crypto.sock'),
      logger: pino({ level: 'warn' }),
    });
    const script = [
      `for r in $(seq ${reps}); do for b in ${sizes.join(' ')}; do for d in e d; do`,
      'x=; [ $d = d ] && x=-decrypt',
      `s(){ openssl speed $1 $x -bytes $b ${SPEED_FLAGS.join(' ')} 2>/dev/null | grep ^+F; }`,
      'echo "o $d $b $(s "-engine afalg")"; echo "s $d $b $(s)"',
      'done; done; done',
    ].join('\n');
    const guest = await runInGuest(image, ['sh', '-c', script], {
      cryptoSocket: backend.socket,
      onLine: () => {},
      timeoutSeconds: 120 + reps * sizes.length * 2 * 2 * 4,
    }).finally(async () => {
      served = backend.stats().requests;
      await backend.close();
    });
    accelerator = guest.accelerator;
    if (guest.exitCode !== 0) throw new Error(`the guest failed (${guest.exitCode}):\n${guest.output}`);
    for (const line of guest.output.split('\n')) {
      const m = /^([os]) ([ed]) (\d+) (.*)$/.exec(line.trim());
      if (m)
        add(
          m[1] === 'o' ? OFFLOAD : SOFTWARE,
          m[2] === 'e' ? 'encrypt' : 'decrypt',
          Number(m[3]),
          parseSpeed(m[4]!),
        );
    }
    progress.tick();
    // The backend without a VM: a loopback front-end in this process, one request at a time, so
    // the guest path's cost splits into what the backend takes and what the VM adds.
    progress.step('backend alone: loopback front-end');
    await loopback(join(dir, 'loopback.sock'), sizes, reps, add);
    progress.tick();
    // The host, after the VM is gone, so the two never share the cores.
    progress.step('host: openssl speed');
    for (let r = 0; r < reps; r++)
      for (const size of sizes)
        for (const decrypt of [false, true]) {
          const result = spawnSync('openssl', speedArgs(size, decrypt), { encoding: 'utf8' });
          add(HOST, decrypt ? 'decrypt' : 'encrypt', size, parseSpeed(result.stdout));
        }
    progress.tick();
  } finally {
    progress.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const points: Point[] = [];
  for (const metric of ['encrypt', 'decrypt'])
    for (const series of [HOST, OFFLOAD, SOFTWARE, LOOPBACK])
      for (const size of sizes) {
        const values = samples.get(`${series}\n${metric}\n${size}`);
        if (!values) throw new Error(`missing ${series} ${metric} samples at ${size} bytes`);
        points.push({
          series,
          x: size,
          xLabel: formatBytes(size),
          metric,
          unit: 'MB/s',
          higherIsBetter: true,
          summary: summarize(values),
        });
      }
  const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim();
  return {
    name: 'fig2-virtio-crypto',
    title: 'AES-128-CBC throughput vs chunk size: guest kernel via virtio-crypto vs host',
    xTitle: 'chunk size',
    machine: describeMachine({ openssl, qemu: describeAccelerator(accelerator) }),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    notes: [
      `guest: openssl speed -engine afalg in a QEMU ${describeAccelerator(accelerator)} VM — AF_ALG → virtio_crypto_aes_cbc → vhost-user → vaccel-crypto-backend (node:crypto / OpenSSL on the host); ${served} requests served`,
      'software: openssl speed in the same VM without the engine (the guest CPU does AES; under TCG that CPU is emulated)',
      'backend alone: the same backend driven by an in-process loopback front-end (no VM), one request at a time, for 0.5 s per sample',
      'host: openssl speed on the host; every sample is one 1-second openssl speed run at one chunk size; MB/s = 1e6 bytes/s',
      `ratios: ${OFFLOAD} ÷ ${LOOPBACK} (what the VM, its kernel and virtio add to the backend) and ÷ ${SOFTWARE} (offloading or not, in the same VM); ${HOST} is there for scale and nothing is divided by it: openssl speed is a native loop with none of a request's costs, so a ratio to it would measure the requests and the emulator, not the path`,
      'chunks stop at 64 KiB: larger afalg operations stall about 1 s each inside the guest (AF_ALG socket buffer), whatever the device',
    ],
  };
}

/** Measures the backend through a loopback front-end: sequential requests, 0.5 s per sample. */
async function loopback(
  socket: string,
  sizes: readonly number[],
  reps: number,
  add: (series: string, metric: string, size: number, value: number) => void,
): Promise<void> {
  const backend = await CryptoBackend.listen({ socket, logger: pino({ level: 'warn' }) });
  const frontend = new LoopbackFrontend(socket, { memoryBytes: 8 << 20, queueSize: 256 });
  try {
    await frontend.setup();
    const key = new Uint8Array(16).fill(7);
    const iv = new Uint8Array(16).fill(9);
    const sessions = {
      encrypt: await frontend.createSession(key, Direction.ENCRYPT),
      decrypt: await frontend.createSession(key, Direction.DECRYPT),
    };
    for (let r = 0; r < reps; r++)
      for (const size of sizes)
        for (const metric of ['encrypt', 'decrypt'] as const) {
          const header = aesCbcRequestHeader(sessions[metric], size, metric === 'decrypt');
          const data = new Uint8Array(size).fill(r);
          let calls = 0;
          const started = performance.now();
          while (performance.now() - started < 500) {
            frontend.submit([header, iv, data], [size, 1]);
            await frontend.completions(1);
            calls++;
          }
          add(LOOPBACK, metric, size, (calls * size) / ((performance.now() - started) * 1e3));
        }
  } finally {
    frontend.close();
    await backend.close();
  }
}
