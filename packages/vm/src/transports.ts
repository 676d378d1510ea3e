/**
 * `vaccel-vm bench transports`: noop round trips from one TCG guest to the host agent over
 * virtio-serial and over virtio-vsock (our vhost-user backend, Firecracker's hybrid vsock), the
 * two interleaved call by call in the same guest process, so both see the same guest and host
 * load. The ratio is taken pair by pair.
 * @module
 */
import {
  type Baseline,
  compareWith,
  describeMachine,
  type FigureOptions,
  type FigureResult,
  type Point,
  ratio,
  summarize,
  type Target,
} from '@vaccel/bench/kit';
import { buildGuest } from './build.js';
import { runInGuest, VSOCK_PORT } from './run.js';

const MARKER = 'VACCEL_TRANSPORTS ';
const SERIAL = 'VM guest (virtio-serial)';
const VSOCK = 'VM guest (virtio-vsock, hybrid)';

/** Runs the comparison in one guest that has both devices. */
export async function transportsVm(options: FigureOptions & { cacheDir: string }): Promise<FigureResult> {
  const image = await buildGuest(options.cacheDir);
  const rounds = options.quick ? 100 : 100 * options.reps;
  const paths = `serial=virtio-serial:///dev/virtio-ports/vaccel vsock=vsock://2:${VSOCK_PORT}`;
  const guest = await runInGuest(image, ['sh', '-c', `ROUNDS=${rounds} node /app/transports.mjs ${paths}`], {
    transport: 'both',
    onLine: () => {},
    timeoutSeconds: 1800,
  });
  const line = guest.output.split('\n').find((l) => l.startsWith(MARKER));
  if (guest.exitCode !== 0 || !line)
    throw new Error(`the guest benchmark failed (exit ${guest.exitCode}):\n${guest.output}`);
  const samples = JSON.parse(line.slice(MARKER.length)) as { serial: number[]; vsock: number[] };
  const point = (series: string, values: number[]): Point => ({
    series,
    x: 0,
    xLabel: 'noop',
    metric: 'round trip',
    unit: 'µs',
    higherIsBetter: false,
    summary: summarize(values),
    samples: values,
  });
  const points = [point(SERIAL, samples.serial), point(VSOCK, samples.vsock)];
  // Alternating call by call in one guest process: pair by pair, as the target.
  const baselines: Baseline[] = [{ series: SERIAL }];
  const vsockOverSerial = ratio(samples.vsock, samples.serial);
  const targets: Target[] = [
    {
      figure: 'noop p50 guest → agent over vsock ÷ over virtio-serial (same TCG guest)',
      value: vsockOverSerial.ratio,
      ci95: vsockOverSerial.ci95,
      bar: 1,
      goal: 1,
      lowerIsBetter: true,
      met: vsockOverSerial.ratio <= 1,
    },
  ];
  return {
    name: 'vm-transports',
    title: `noop round trip from a QEMU guest (${guest.accelerator.toUpperCase()}): virtio-serial vs virtio-vsock`,
    xTitle: 'operation',
    machine: describeMachine(),
    options: { reps: options.reps, quick: options.quick },
    points,
    comparisons: compareWith(points, baselines),
    baselines,
    targets,
    notes: [
      `${rounds} noop calls per transport from one guest process, alternating call by call (20 warm-up calls each first)`,
      `${SERIAL}: QEMU's virtio-serial port, connected by QEMU to the agent's unix socket`,
      `${VSOCK}: vhost-user-vsock-pci served by vaccel-vsock-backend (in the vaccel-vm process); the guest connects to vsock://2:${VSOCK_PORT}, the backend to the agent's unix://<uds>_${VSOCK_PORT}`,
      `the vsock backend carried ${guest.vsock?.bytesFromGuest ?? 0} bytes up and ${guest.vsock?.bytesToGuest ?? 0} down`,
    ],
  };
}
