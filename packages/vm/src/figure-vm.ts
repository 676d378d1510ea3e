/**
 * fig4 and fig7 from inside a QEMU guest (`vaccel-vm bench fig4|fig7`): SGEMM or image
 * classification offloaded from the VM to the host agent, in-band over the guest's transport
 * (virtio-serial or virtio-vsock) and through the VM's ivshmem device, against the host's own
 * in-process path measured by the same command just before the guest boots.
 *
 * Under TCG every guest instruction is emulated, so the guest's share of each call (packing, the
 * RPC, staging copies) is far slower than on real hardware; the shared memory path leaves the
 * guest almost nothing to do per call, which is what this figure shows.
 * @module
 */
import { fig4 } from '@vaccel/bench/fig4';
import { fig7 } from '@vaccel/bench/fig7';
import {
  type Baseline,
  compareWith,
  type FigureOptions,
  type FigureResult,
  HOST,
  type Point,
} from '@vaccel/bench/kit';
import { keepFreedMemory } from '@vaccel/memory';
import { buildGuest } from './build.js';
import { type GuestTransport, runInGuest, VSOCK_PORT } from './run.js';

const SERIAL = 'virtio-serial:///dev/virtio-ports/vaccel';
const MARKER = 'VACCEL_FIGURE_JSON';

/**
 * The figures that run in a guest, and what their host halves are; `about` starts the host
 * figure's note that says what is measured (the one the VM page keeps).
 */
const FIGURES = {
  fig4: {
    run: fig4,
    title: 'SGEMM MFLOPS vs matrix size',
    data: 'A and B sent and C received',
    about: 'C = A·B',
  },
  fig7: { run: fig7, title: 'classification time vs image size', data: 'the image sent', about: 'examples/' },
} as const;
export type GuestFigure = keyof typeof FIGURES;

/** Runs `figure` in a guest with an ivshmem device of `sharedMemoryMiB` MiB. */
export async function figureInVm(
  figure: GuestFigure,
  options: FigureOptions & { cacheDir: string; sharedMemoryMiB?: number; transport?: GuestTransport },
): Promise<FigureResult> {
  const vsock = options.transport === 'vsock';
  // Over vsock one address serves both paths: every process may open as many connections as it likes.
  const address = vsock ? `vsock://2:${VSOCK_PORT}` : SERIAL;
  const sharedAddress = vsock ? address : `${SERIAL}-2`;
  const channel = vsock ? 'virtio-vsock' : 'virtio-serial';
  // The host path runs in this process: with the allocator setting the agent (and vaccel-bench) use.
  keepFreedMemory();
  const spec = FIGURES[figure];
  const onHost = await spec.run({ ...options, startAgent: false });
  const image = await buildGuest(options.cacheDir);
  const args = ['--no-agent', '--no-host', '--address', address, '--shared-address', sharedAddress];
  args.push('--reps', String(options.reps));
  const script = [
    `vaccel-bench ${figure} ${args.join(' ')}${options.quick ? ' --quick' : ''} --out /tmp/out >/dev/null`,
    `echo ${MARKER}`,
    `cat /tmp/out/${figure}.json`,
  ].join(' && ');
  const guest = await runInGuest(image, ['sh', '-c', script], {
    onLine: () => {},
    timeoutSeconds: options.quick ? 600 : 3600,
    sharedMemoryMiB: options.sharedMemoryMiB ?? 256,
    transport: vsock ? 'vsock' : 'serial',
  });
  const at = guest.output.indexOf(MARKER);
  if (guest.exitCode !== 0 || at < 0)
    throw new Error(`the guest benchmark failed (exit ${guest.exitCode}):\n${guest.output}`);
  const inGuest = JSON.parse(guest.output.slice(at + MARKER.length)) as FigureResult;
  const rename = (series: string): string =>
    series
      .replace(`guest (${address}, shared memory)`, `VM guest (ivshmem, calls over ${channel})`)
      .replace(`guest (${address})`, `VM guest (${channel}, in-band)`);
  const points: Point[] = [
    ...onHost.points,
    ...inGuest.points.map((point) => ({ ...point, series: rename(point.series) })),
  ];
  const inBand = `VM guest (${channel}, in-band)`;
  // Every guest path against the host's in-process op: samples from two processes, one after the
  // other, not pairs, so ratios of the medians. Then the ivshmem path against in-band in the same
  // guest process (interleaved: pair by pair), which is what the shared memory saves the guest.
  const baselines: Baseline[] = [
    { series: HOST, paired: false },
    { series: inBand, paths: [`VM guest (ivshmem, calls over ${channel})`] },
  ];
  return {
    ...onHost,
    name: `${figure}-vm${vsock ? '-vsock' : ''}`,
    title: `${spec.title}: host in-process vs a QEMU guest under ${guest.accelerator.toUpperCase()}${vsock ? ' (virtio-vsock)' : ''}`,
    points,
    comparisons: compareWith(points, baselines),
    baselines,
    notes: [
      ...onHost.notes.filter((note) => note.startsWith(spec.about)),
      'host (in-process): measured on the host by this command, just before the guest boots',
      `VM guest (${channel}, in-band): vaccel-bench in the guest, ${spec.data} over ${channel}${vsock ? ' (vhost-user-vsock-pci served by vaccel-vsock-backend, hybrid vsock to the agent)' : ''}`,
      `VM guest (ivshmem): the same with the data allocated in the guest's ivshmem device (${options.sharedMemoryMiB ?? 256} MiB), which the host gave the agent: only the calls cross ${channel}`,
    ],
  };
}
