/**
 * fig2 — AES-CBC-128 throughput vs chunk size, encrypt and decrypt: a stream of chunks, one call
 * per chunk, so the per-call cost shows at small sizes. Host = in-process crypto plugin (OpenSSL
 * via node:crypto), guest = the same op through the agent.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { budgetFor, formatBytes, HOST, openPaths, placed, sweep, type Tick } from '../paths.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult } from '../result.js';

/** Every guest path against the same op in-process (same data, interleaved: pair by pair). */
const BASELINES: Baseline[] = [{ series: HOST }];

/** Runs fig2. */
export async function fig2(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sizes = Array.from({ length: quick ? 6 : 9 }, (_, i) => 64 * 4 ** (quick ? i + (i > 2 ? 1 : 0) : i));
  // Calls per sample: about 64 KiB of data (1 to 200 calls), so small chunks time well.
  const callsFor = (size: number) => Math.min(200, Math.max(1, Math.round((64 << 10) / size)));
  const ticks: Tick[] = sizes.map((x) => ({ x, label: formatBytes(x) }));
  const key = randomBytes(16);
  const iv = randomBytes(16);
  // Plaintext, ciphertext and an output of each size, in the shared memory path's region.
  await using paths = await openPaths(
    options,
    sizes.reduce((sum, size) => sum + 3 * (size + 64), 0),
  );
  const progress = new Progress('fig2', ticks.length * 2);
  const plain = new Map(sizes.map((s) => [s, new Uint8Array(randomBytes(s))]));
  const sealed = new Map<number, Uint8Array>();
  for (const s of sizes) {
    const { data } = await paths.host.session.encrypt({
      algorithm: 'aes-128-cbc',
      padding: false,
      key,
      iv,
      data: plain.get(s)!,
    });
    sealed.set(s, data);
  }
  const run =
    (direction: 'encrypt' | 'decrypt') => async (path: (typeof paths.all)[number], size: number) => {
      const calls = callsFor(size);
      const data = placed(
        path,
        `${direction}${size}`,
        () => (direction === 'encrypt' ? plain : sealed).get(size)!,
      );
      // In shared memory the result is written in place into an output of the guest's.
      const output = path.region ? placed(path, `out${size}`, () => new Uint8Array(size)) : undefined;
      const started = performance.now();
      for (let i = 0; i < calls; i++) {
        const params = { algorithm: 'aes-128-cbc' as const, padding: false, key, iv, data, output };
        if (direction === 'encrypt') await path.session.encrypt(params);
        else await path.session.decrypt(params);
      }
      return (calls * size) / ((performance.now() - started) * 1e3); // MB/s
    };
  const points = [];
  try {
    for (const direction of ['encrypt', 'decrypt'] as const) {
      const swept = await sweep(
        paths.all,
        ticks,
        budgetFor(options),
        run(direction),
        { metric: direction, unit: 'MB/s', higherIsBetter: true },
        progress,
      );
      points.push(...swept);
    }
  } finally {
    progress.stop();
  }
  return {
    name: 'fig2',
    title: 'AES-128-CBC throughput vs chunk size (host vs guest)',
    xTitle: 'chunk size',
    machine: describeMachine(paths.versions),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    notes: [
      'one call per chunk, sequential, no padding (chunks are whole blocks); MB/s = 1e6 bytes/s of plaintext; a sample = about 64 KiB of chunks (1–200 calls), host and guest samples interleaved, ≥ 50 samples and ≥ 1 s per point (quick: fewer)',
      'host: the crypto plugin in-process (node:crypto / OpenSSL), results in fresh memory; guest (agent, unix): the same op through vaccel-agent over a unix socket',
      'guest (agent, shared memory): data and output in a memfd region the agent maps; the agent writes the result into the output in place (node:crypto has no in-place cipher, so that is one copy more than the host does)',
    ],
  };
}
