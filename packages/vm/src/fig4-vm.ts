/**
 * fig4 from inside a QEMU guest (`vaccel-vm bench fig4`): SGEMM offloaded from the VM to the host
 * agent, in-band over virtio-serial and through the VM's ivshmem device, against the host's own
 * in-process SGEMM measured by the same command just before the guest boots.
 *
 * Under TCG every guest instruction is emulated, so the guest's share of each call (packing, the
 * RPC, staging copies) is far slower than on real hardware; the shared memory path leaves the
 * guest almost nothing to do per call, which is what this figure shows.
 * @module
 */
import { fig4 } from '@vaccel/bench/fig4';
import { compare, type FigureOptions, type FigureResult, HOST, type Point } from '@vaccel/bench/kit';
import { keepFreedMemory } from '@vaccel/memory';
import { buildGuest } from './build.js';
import { runInGuest } from './run.js';

const SERIAL = 'virtio-serial:///dev/virtio-ports/vaccel';
const MARKER = 'VACCEL_FIG4_JSON';

/** Runs fig4 in a guest with an ivshmem device of `sharedMemoryMiB` MiB. */
export async function fig4Vm(
  options: FigureOptions & { cacheDir: string; sharedMemoryMiB?: number },
): Promise<FigureResult> {
  // The host path runs in this process: with the allocator setting the agent (and vaccel-bench) use.
  keepFreedMemory();
  const onHost = await fig4({ ...options, startAgent: false });
  const image = await buildGuest(options.cacheDir);
  const args = ['--no-agent', '--no-host', '--address', SERIAL, '--shared-address', `${SERIAL}-2`];
  args.push('--reps', String(options.reps));
  const script = [
    `vaccel-bench fig4 ${args.join(' ')}${options.quick ? ' --quick' : ''} --out /tmp/out >/dev/null`,
    `echo ${MARKER}`,
    'cat /tmp/out/fig4.json',
  ].join(' && ');
  const guest = await runInGuest(image, ['sh', '-c', script], {
    onLine: () => {},
    timeoutSeconds: options.quick ? 600 : 3600,
    sharedMemoryMiB: options.sharedMemoryMiB ?? 256,
  });
  const at = guest.output.indexOf(MARKER);
  if (guest.exitCode !== 0 || at < 0)
    throw new Error(`the guest benchmark failed (exit ${guest.exitCode}):\n${guest.output}`);
  const inGuest = JSON.parse(guest.output.slice(at + MARKER.length)) as FigureResult;
  const rename = (series: string): string =>
    series
      .replace(`guest (${SERIAL}, shared memory)`, 'VM guest (ivshmem)')
      .replace(`guest (${SERIAL})`, 'VM guest (virtio-serial, in-band)');
  const points: Point[] = [
    ...onHost.points,
    ...inGuest.points.map((point) => ({ ...point, series: rename(point.series) })),
  ];
  return {
    ...onHost,
    name: 'fig4-vm',
    title: `SGEMM MFLOPS vs matrix size: host in-process vs a QEMU guest under ${guest.accelerator.toUpperCase()}`,
    points,
    // Host and guest samples come from two processes, one after the other: not pairs, so the
    // ratio is of medians (no interval).
    comparisons: compare(
      points.map(({ samples: _, ...point }) => point),
      HOST,
    ),
    notes: [
      ...onHost.notes.slice(0, 1),
      'host (in-process): measured on the host by this command, just before the guest boots',
      'VM guest (virtio-serial, in-band): vaccel-bench in the guest, A and B sent and C received over virtio-serial',
      `VM guest (ivshmem): the same with A, B and C allocated in the guest's ivshmem device (${options.sharedMemoryMiB ?? 256} MiB), which the host gave the agent: only the calls cross virtio-serial`,
    ],
  };
}
