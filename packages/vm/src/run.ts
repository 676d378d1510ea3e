/**
 * Boots the guest with QEMU and runs one command in it, its RPC plugin pointed at a
 * `vaccel-agent` on the host, so every op the guest asks for runs on the host's plugins. Two
 * transports: virtio-serial (the port `vaccel`, connected by QEMU to the agent's unix socket) or
 * virtio-vsock as a Firecracker guest has it (a `vhost-user-vsock-pci` device served by our
 * {@link VsockBackend}; the guest connects to `vsock://2:PORT`, the agent listens on
 * `unix://<uds>_PORT`, exactly as on a Firecracker host).
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentBytes, agentBytes, startAgent } from '@vaccel/bench/agent-process';
import { closeQuietly, native } from '@vaccel/memory';
import { spawnTied } from '@vaccel/process';
import { VsockBackend, type VsockStats } from '@vaccel/vhost-user';
import pino from 'pino';
import { type Accelerator, chooseAccelerator, describeAccelerator } from './accel.js';
import type { GuestImage } from './build.js';

/**
 * How the guest reaches the agent: `serial`, `vsock`, or `both` devices (the command's
 * VACCEL_RPC_ADDRESS is then the serial port; benchmarks compare the two in one guest).
 */
export type GuestTransport = 'serial' | 'vsock' | 'both';

/** The guest's CID and the port its RPC plugin connects to, with `transport: 'vsock'`. */
export const GUEST_CID = 3;
export const VSOCK_PORT = 2048;

/** Options of {@link runInGuest}. */
export interface RunOptions {
  /**
   * `serial` (default): virtio-serial ports to the agent. `vsock`: only a virtio-vsock device,
   * served with Firecracker's hybrid-vsock semantics (no virtio-serial in the guest at all).
   */
  transport?: GuestTransport;
  /** Give up (and kill QEMU) after this many seconds (default 300). */
  timeoutSeconds?: number;
  /** Guest memory in MiB (default 1024). */
  memoryMiB?: number;
  /** Called with each line the guest prints (default: written to stdout). */
  onLine?: (line: string) => void;
  /**
   * Give the guest a virtio-crypto device served by the vhost-user backend listening on this
   * unix socket (e.g. a `CryptoBackend` from @vaccel/vhost-user). Guest memory becomes a shared
   * memfd, as vhost-user needs.
   */
  cryptoSocket?: string;
  /**
   * Give the guest an `ivshmem-plain` device of this many MiB (a power of two), backed by a
   * sealed memfd that the agent maps too (`--device-memory-fd`): the guest's RPC plugin then
   * moves its data through it, and only calls cross virtio-serial. 0 or unset: none.
   */
  sharedMemoryMiB?: number;
  /** Stops the run: QEMU is killed and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called once QEMU and the agent run, with their process ids. */
  onStart?: (started: { qemu: number; agent: number; accelerator: Accelerator }) => void;
  /**
   * Where the one line saying which accelerator runs the guest, and why, goes (default: stderr,
   * once per process).
   */
  log?: (line: string) => void;
}

/** What a guest run produced. */
export interface GuestRun {
  exitCode: number;
  /** Everything the guest printed, exit marker removed. */
  output: string;
  /** Payload bytes the agent received and sent (its metrics), in all and by listening address. */
  agentBytes: AgentBytes;
  /** The accelerator QEMU ran the guest with. */
  accelerator: Accelerator;
  /** With a vsock device: what the vsock backend carried, and where the agent listened for it. */
  vsock?: VsockStats & { agentAddress: string };
}

/** Room for `vaccel.cmd=` on the 2,048-byte x86 kernel command line, after our other options. */
const MAX_COMMAND = 1850;
/** The vsock backend logs nothing here: its counters are in the result. */
const silentLogger = pino({ level: 'silent' });
const EXIT_MARKER = /VACCEL_VM_EXIT=(\d+)/;
/** The kernel's own last words ("reboot: Power down"), not the guest command's output. */
const KERNEL_LINE = /^\[\s*\d+\.\d+\] (reboot|ACPI):/;

let accelerationSaid = false;
const sayOnce = (line: string): void => {
  if (accelerationSaid) return;
  accelerationSaid = true;
  process.stderr.write(`vaccel-vm: ${line}\n`);
};

/** Boots `image`, runs `argv` in the guest (e.g. `['vaccel', 'sgemm', '--n', '64']`), powers off. */
export async function runInGuest(
  image: GuestImage,
  argv: readonly string[],
  options: RunOptions = {},
): Promise<GuestRun> {
  if (argv.length === 0) throw new Error('no guest command given');
  options.signal?.throwIfAborted();
  const shmMiB = options.sharedMemoryMiB ?? 0;
  if (shmMiB !== 0 && (!Number.isInteger(shmMiB) || shmMiB < 1 || (shmMiB & (shmMiB - 1)) !== 0))
    throw new Error(`the shared memory size must be a power of two of MiB, got ${shmMiB}`);
  // ivshmem's memory: sealed (its size can never change under the agent's mapping), handed to
  // QEMU and to the agent as an inherited descriptor, never by a name another process could open.
  const shm = shmMiB > 0 ? native().memfd('vaccel-ivshmem', shmMiB << 20, true) : undefined;
  // The descriptor goes when the run ends (QEMU and the agent hold their own).
  await using _ivshmem = { [Symbol.asyncDispose]: async () => closeQuietly(shm) };
  const transport = options.transport ?? 'serial';
  if (transport !== 'serial' && transport !== 'vsock' && transport !== 'both')
    throw new Error(`the guest transport is serial, vsock or both, got ${transport}`);
  // vsock: the backend's sockets, and the agent where Firecracker would forward the guest's port.
  const vsockDir = transport !== 'serial' ? mkdtempSync(join(tmpdir(), 'vaccel-vsock-')) : undefined;
  await using _vsockDir = {
    [Symbol.asyncDispose]: async () => {
      if (vsockDir) rmSync(vsockDir, { recursive: true, force: true });
    },
  };
  const uds = vsockDir && join(vsockDir, 'vm.vsock');
  await using vsock = vsockDir
    ? await VsockBackend.listen({
        socket: join(vsockDir, 'vhost-user.sock'),
        uds: uds!,
        guestCid: GUEST_CID,
        logger: silentLogger,
      })
    : undefined;
  await using agent = await startAgent({
    metrics: true,
    deviceMemoryFd: shm,
    // Where Firecracker would forward the guest's port.
    extraAddresses: uds ? [`unix://${uds}_${VSOCK_PORT}`] : [],
  });
  const socket = agent.address.replace(/^unix:\/\//, '');
  const command = Buffer.from(JSON.stringify(argv)).toString('base64url');
  // x86 kernels keep 2,048 bytes of command line; a longer one is cut and the guest hangs or fails.
  if (command.length > MAX_COMMAND)
    throw new Error(
      `the guest command is too long for the kernel command line (${command.length} bytes encoded, at most ${MAX_COMMAND}); put long scripts in a file in the guest image`,
    );
  const { accelerator, reason } = await chooseAccelerator({ kernel: image.kernel, signal: options.signal });
  (options.log ?? sayOnce)(`the guest runs under ${describeAccelerator(accelerator)}: ${reason}`);
  const memory = options.memoryMiB ?? 1024;
  // vhost-user back-ends map guest memory: it must be a shared memfd.
  const sharedRam =
    options.cryptoSocket || vsock
      ? ['-object', `memory-backend-memfd,id=mem,size=${memory}M,share=on`, '-machine', 'memory-backend=mem']
      : [];
  const crypto = options.cryptoSocket
    ? [
        ...['-chardev', `socket,id=crypto0,path=${options.cryptoSocket}`],
        ...['-object', 'cryptodev-vhost-user,id=cryptodev0,chardev=crypto0'],
        // vectors=0 (legacy interrupts): QEMU 7.2 crashes starting a vhost-user crypto device
        // with MSI-X, in the config-interrupt notifier it added that the crypto device lacks.
        ...['-device', 'virtio-crypto-pci,id=crypto0,cryptodev=cryptodev0,vectors=0'],
      ]
    : [];
  const ivshmem =
    shm === undefined
      ? []
      : [
          ...[
            '-object',
            `memory-backend-file,id=vaccelshm,size=${shmMiB}M,mem-path=/proc/self/fd/3,share=on`,
          ],
          ...['-device', 'ivshmem-plain,memdev=vaccelshm'],
        ];
  const channel = [
    ...(vsock
      ? [
          ...['-chardev', `socket,id=vsock0,path=${vsock.socket}`],
          ...['-device', 'vhost-user-vsock-pci,chardev=vsock0'],
        ]
      : []),
    ...(transport !== 'vsock'
      ? [
          ...['-device', 'virtio-serial-pci', '-chardev', `socket,id=vaccel,path=${socket},reconnect=1`],
          ...['-device', 'virtserialport,chardev=vaccel,name=vaccel'],
          // A second port to the same agent, for a second process in the guest (a port opens once).
          ...['-chardev', `socket,id=vaccel2,path=${socket},reconnect=1`],
          ...['-device', 'virtserialport,chardev=vaccel2,name=vaccel-2'],
        ]
      : []),
  ];
  const address = transport === 'vsock' ? ` vaccel.address=vsock://2:${VSOCK_PORT}` : '';
  // Tied: QEMU dies with this process, however it ends (the agent is tied the same way).
  const qemu = spawnTied(
    'qemu-system-x86_64',
    [
      ...['-accel', accelerator, '-m', String(memory), '-smp', '2'],
      ...sharedRam,
      ...crypto,
      ...ivshmem,
      ...['-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot'],
      ...['-kernel', image.kernel, '-initrd', image.initrd],
      ...['-append', `console=ttyS0 quiet loglevel=3 panic=-1${address} vaccel.cmd=${command}`],
      ...channel,
    ],
    { stdio: ['ignore', 'pipe', 'pipe', shm ?? 'ignore'] },
  );
  const onLine = options.onLine ?? ((line: string) => process.stdout.write(`${line}\n`));
  let output = '';
  let exitCode: number | undefined;
  let pending = '';
  let stderr = '';
  qemu.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  // Decode as a stream: a UTF-8 character may be split across two chunks.
  qemu.stdout!.setEncoding('utf8');
  qemu.stdout!.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      const marker = EXIT_MARKER.exec(line);
      if (marker) {
        exitCode = Number(marker[1]);
        continue;
      }
      if (KERNEL_LINE.test(line)) continue;
      output += `${line}\n`;
      onLine(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => qemu.once('exit', (code) => resolve(code)));
  const timeout = setTimeout(() => qemu.kill('SIGKILL'), (options.timeoutSeconds ?? 300) * 1000);
  const abort = (): void => {
    qemu.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', abort, { once: true });
  if (qemu.pid !== undefined && agent.process.pid !== undefined)
    options.onStart?.({ qemu: qemu.pid, agent: agent.process.pid, accelerator });
  const status = await exited;
  clearTimeout(timeout);
  options.signal?.removeEventListener('abort', abort);
  options.signal?.throwIfAborted();
  if (exitCode === undefined) {
    throw new Error(
      `the guest did not report an exit code (qemu exited with ${status}${status === null ? ', killed after the timeout' : ''})${stderr ? `: ${stderr.trim()}` : ''}`,
    );
  }
  return {
    exitCode,
    output,
    agentBytes: await agentBytes(agent),
    accelerator,
    ...(vsock ? { vsock: { ...vsock.stats(), agentAddress: `unix://${uds}_${VSOCK_PORT}` } } : {}),
  };
}

/** The JSON document a guest command printed (from the first line starting with `{`). */
export function jsonFromOutput<T = unknown>(output: string): T {
  const start = output.search(/^\{/m);
  if (start < 0) throw new Error(`the guest printed no JSON:\n${output}`);
  return JSON.parse(output.slice(start, output.lastIndexOf('}') + 1)) as T;
}
