/**
 * tls — what TLS costs on the remote path: noop round-trip latency and 1 MiB AES throughput to one
 * agent over plain TCP (loopback) and over TLS (certificates made with openssl for the run),
 * interleaved call by call in the same run.
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Session, Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { freePort, startAgent } from '../agent-process.js';
import { makeCertificates } from '../certificates.js';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult, type Point, type Target } from '../result.js';
import { ratio, summarize } from '../stats.js';

/** Runs the TLS figure. */
export async function tlsFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-bench-tls-'));
  try {
    makeCertificates(dir);
    const [tcpPort, tlsPort] = [await freePort(), await freePort()];
    // Two identical agents: with --tls-cert an agent serves TLS on its tcp:// addresses too.
    await using _plain = await startAgent({
      plugins: 'noop:crypto',
      extraAddresses: [`tcp://127.0.0.1:${tcpPort}`],
    });
    await using _tls = await startAgent({
      plugins: 'noop:crypto',
      extraAddresses: [`tls://127.0.0.1:${tlsPort}`],
      args: ['--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key')],
    });
    const open = async (address: string) => {
      const vaccel = await Vaccel.open({
        plugins: [remotePlugin({ address, env: { VACCEL_RPC_TLS_CA: join(dir, 'ca.pem') } })],
      });
      return { vaccel, session: await vaccel.createSession() };
    };
    const paths = {
      'plain TCP': await open(`tcp://127.0.0.1:${tcpPort}`),
      TLS: await open(`tls://127.0.0.1:${tlsPort}`),
    };
    const calls = quick ? 200 : Math.max(2000, reps * 400);
    const chunks = quick ? 10 : Math.max(40, reps * 8);
    const key = new Uint8Array(16);
    const iv = new Uint8Array(16);
    const data = new Uint8Array(1 << 20);
    const measure = async (work: (s: Session) => Promise<unknown>, n: number, progress: Progress) => {
      const samples: Record<string, number[]> = { 'plain TCP': [], TLS: [] };
      for (const p of Object.values(paths)) for (let i = 0; i < 20; i++) await work(p.session); // warm up
      for (let i = 0; i < n; i++) {
        if (i % Math.ceil(n / 10) === 0) progress.step(`${i}/${n}`);
        for (const [name, p] of Object.entries(paths)) {
          const started = performance.now();
          await work(p.session);
          samples[name]!.push(performance.now() - started);
        }
      }
      return samples;
    };
    const progress = new Progress('tls', 20);
    let latency: Record<string, number[]>;
    let bulk: Record<string, number[]>;
    try {
      latency = await measure((s) => s.noop(), calls, progress);
      bulk = await measure((s) => s.encrypt({ algorithm: 'aes-128-ctr', key, iv, data }), chunks, progress);
    } finally {
      progress.stop();
      for (const p of Object.values(paths)) await p.vaccel.close();
    }
    const point = (
      series: string,
      x: number,
      xLabel: string,
      metric: string,
      unit: string,
      values: number[],
      higher: boolean,
    ): Point => ({
      series,
      x,
      xLabel,
      metric,
      unit,
      higherIsBetter: higher,
      summary: summarize(values),
      samples: values,
    });
    const mbps = (ms: number[]) => ms.map((t) => data.byteLength / 2 ** 20 / (t / 1000));
    const points = Object.keys(paths).flatMap((series) => [
      point(
        series,
        0,
        'noop',
        'latency',
        'µs',
        latency[series]!.map((ms) => ms * 1000),
        false,
      ),
      point(series, 1, '1 MiB AES-CTR', 'throughput', 'MiB/s', mbps(bulk[series]!), true),
    ]);
    // The ratio of the two p50s, with its own interval (not the pairwise ratios' interval).
    const p50 = ratio(latency.TLS!, latency['plain TCP']!, false);
    const targets: Target[] = [
      {
        figure: 'TLS noop p50 ÷ plain TCP noop p50',
        value: p50.ratio,
        ci95: p50.ci95,
        bar: 1.5,
        goal: 1.2,
        lowerIsBetter: true,
        met: p50.ratio <= 1.5,
      },
    ];
    // TLS against the same calls in the clear (interleaved call by call: pair by pair).
    const baselines: Baseline[] = [{ series: 'plain TCP' }];
    return {
      name: 'tls',
      title: 'TLS on the remote path vs plain TCP (same agent, same run)',
      xTitle: '',
      machine: describeMachine({}),
      options: { reps, quick },
      points,
      comparisons: compareWith(points, baselines),
      baselines,
      targets,
      notes: [
        `two identical agents (--plugins noop:crypto), one on plain tcp://127.0.0.1 (loopback needs no --insecure), one on tls://127.0.0.1 (ECDSA P-256 certificate made with openssl for the run; TLS 1.3)`,
        `${calls} sequential noops and ${chunks} 1 MiB AES-128-CTR calls per path, the paths interleaved call by call; ratio = median of pairwise ratios with 95 % bootstrap interval`,
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
