/**
 * `vaccel-bench`: reproduces the published vAccel figures and measures the RPC path, host
 * (in-process) against guest (through the agent) in the same run.
 * @module
 */
import { parseArgs } from 'node:util';
import type { FigureOptions } from './figure.js';
import { consoleReport, renderResult, writeResult } from './report.js';
import type { FigureResult } from './result.js';

const figures: Record<string, { about: string; run(options: FigureOptions): Promise<FigureResult> }> = {
  // Loaded on demand: a guest VM runs fig2/fig4 without the host-only packages (ONNX, sharp, vega).
  fig2: {
    about: 'AES-128-CBC encrypt/decrypt MB/s vs chunk size, host vs guest',
    run: async (o) => (await import('./figures/fig2.js')).fig2(o),
  },
  fig4: {
    about: 'SGEMM MFLOPS vs matrix size, host vs guest',
    run: async (o) => (await import('./figures/fig4.js')).fig4(o),
  },
  fig7: {
    about: 'image classification ms vs image size, host vs guest',
    run: async (o) => (await import('./figures/fig7.js')).fig7(o),
  },
  detect: {
    about: 'object detection ms per 640×480 photo, host vs guest',
    run: async (o) => (await import('./figures/detect.js')).detectFigure(o),
  },
  accuracy: {
    about: 'object detection precision, recall, mAP@0.5 and top-1 per shipped detector (examples/eval)',
    run: async (o) => (await import('./figures/accuracy.js')).accuracyFigure(o),
  },
  coldstart: {
    about: 'fresh guest process: bare node, import, first remote noop (ms)',
    run: async (o) => (await import('./figures/coldstart.js')).coldstartFigure(o),
  },
  tls: {
    about: 'TLS vs plain TCP: noop latency and 1 MiB AES throughput',
    run: async (o) => (await import('./figures/tls.js')).tlsFigure(o),
  },
  rpc: {
    about: 'noop latency p50/p99, pipelined calls/s, 4 MiB payload GB/s',
    run: async (o) => (await import('./figures/rpc.js')).rpcFigure(o),
  },
  tenants: {
    about: 'one agent, many guest processes: detections/s, RSS per guest, a light tenant beside noisy ones',
    run: async (o) => (await import('./figures/tenants.js')).tenantsFigure(o),
  },
  onnx: {
    about: 'ONNX plugin: sgemm GFLOP/s (1 and 2 threads) vs sgemm-js; classify time split',
    run: async (o) => (await import('./figures/onnx.js')).onnxFigure(o),
  },
  upstream: {
    about:
      'small calls over TCP with peers that write like upstream (Nagle on): quick-ack on/off, both ways (ms)',
    run: async (o) => (await import('./figures/upstream.js')).upstreamFigure(o),
  },
};

const usage = `Usage: vaccel-bench <figure|all> [options]

Figures:
${Object.entries(figures)
  .map(([name, f]) => `  ${name.padEnd(8)} ${f.about}`)
  .join('\n')}
  all      every figure above

Re-rendering (no measurement):
  render FILE.json …  rewrite each result's Markdown and JSON from its JSON, the
                   comparisons recomputed from its samples and the baselines it declares

Options:
  --quick          a short smoke run (fewer points and repetitions)
  --reps N         measured repetitions per point (default 5, quick 3)
  --out DIR        write <figure>.json, .csv, .md, .svg and .png into DIR
  --address ADDR   also measure through an agent already running at ADDR
  --no-agent       do not start a local agent: guest = --address only (e.g. inside a VM:
                   --address virtio-serial:///dev/virtio-ports/vaccel; fig2 and fig4)
  --shared-address ADDR  the shared memory path to --address's agent goes through ADDR (a
                   second virtio-serial port in a VM guest)
  --no-host        leave the in-process path out
  -h, --help       this help

Figures measured in a QEMU guest (fig2 through virtio-crypto, fig4 over ivshmem) are
\`vaccel-vm bench fig2|fig4\` (npm run vm:bench -- fig2).

Each point is the median of its repetitions, after a warm-up; guest and host are measured in the
same run and compared as guest/host ratios.`;

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // The agent keeps the memory it frees (see @vaccel/memory keepFreedMemory); so does the host
  // path here, so that both sides run with the same allocator (absent in a VM guest: no matter).
  await import('@vaccel/memory').then((m) => m.keepFreedMemory()).catch(() => false);
  let parsed: ReturnType<typeof parse>;
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        quick: { type: 'boolean', default: false },
        reps: { type: 'string' },
        out: { type: 'string' },
        address: { type: 'string' },
        'shared-address': { type: 'string' },
        'no-agent': { type: 'boolean', default: false },
        'no-host': { type: 'boolean', default: false },
        'virtio-crypto': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  try {
    parsed = parse(argv);
  } catch (error) {
    process.stderr.write(`vaccel-bench: ${(error as Error).message}\n\n${usage}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [which, ...extra] = positionals;
  if (which === 'render') {
    if (extra.length === 0) {
      process.stderr.write(`vaccel-bench: render needs the result JSON files\n\n${usage}\n`);
      return 2;
    }
    for (const file of extra) for (const path of renderResult(file)) process.stdout.write(`wrote ${path}\n`);
    return 0;
  }
  const names = which === 'all' ? Object.keys(figures) : which ? [which] : [];
  const unknown = names.filter((name) => !figures[name]);
  if (names.length === 0 || unknown.length > 0 || extra.length > 0) {
    process.stderr.write(
      `vaccel-bench: ${names.length === 0 ? 'name a figure' : `unknown figure ${[...unknown, ...extra].join(' ')}`}\n\n${usage}\n`,
    );
    return 2;
  }
  const reps = values.reps === undefined ? (values.quick ? 3 : 5) : Number(values.reps);
  if (!Number.isSafeInteger(reps) || reps < 1) {
    process.stderr.write(`vaccel-bench: --reps must be a positive integer, got ${values.reps}\n`);
    return 2;
  }
  if (values['no-agent'] && !values.address) {
    process.stderr.write('vaccel-bench: --no-agent needs --address (the guest path to measure)\n');
    return 2;
  }
  if (values['virtio-crypto']) {
    process.stderr.write(
      'vaccel-bench: fig2 through virtio-crypto moved to the VM tooling: `vaccel-vm bench fig2` (npm run vm:bench -- fig2)\n',
    );
    return 2;
  }
  const options: FigureOptions = {
    reps,
    quick: values.quick ?? false,
    address: values.address,
    sharedAddress: values['shared-address'],
    startAgent: !values['no-agent'],
    host: !values['no-host'],
  };
  for (const name of names) {
    const result = await figures[name]!.run(options);
    process.stdout.write(`\n${consoleReport(result)}`);
    if (values.out)
      for (const file of await writeResult(values.out, result)) process.stdout.write(`wrote ${file}\n`);
  }
  return 0;
}
