/**
 * KVM or TCG: which accelerator QEMU is given.
 *
 * A `/dev/kvm` that opens read-write is not proof that KVM runs a guest: on some hosts (nested
 * virtualisation that exposes a partial KVM) QEMU warns `host doesn't support requested feature`
 * and the guest never executes, burning CPU until it is killed. So KVM is used only after a probe
 * guest has run under it: QEMU boots the guest kernel with early console output and must print its
 * first line within the probe's time. The answer is cached in this process and, per host boot and
 * QEMU build, on disk; `VACCEL_VM_ACCEL=auto|kvm|tcg` overrides it.
 * @module
 */
import { accessSync, constants, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnTied } from '@vaccel/process';

/** A QEMU accelerator. */
export type Accelerator = 'kvm' | 'tcg';

/** Which accelerator to use, and why (one line, for logs and figures). */
export interface AcceleratorChoice {
  accelerator: Accelerator;
  reason: string;
}

/** Options of {@link probeAccelerator}. */
export interface ProbeOptions {
  /** A Linux kernel image (bzImage) to boot: it must print its first line. */
  kernel: string;
  /** The accelerator to try (default `kvm`; `tcg` checks the probe itself). */
  accelerator?: Accelerator;
  /** QEMU's binary (default `qemu-system-x86_64`). */
  qemu?: string;
  /** How long the guest has to print its first line (default 20 s: KVM needs well under 1 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The outcome of one probe boot. */
export type ProbeResult = { runs: true } | { runs: false; why: string };

/**
 * Boots `kernel` (no initramfs) under `accelerator` with its console on QEMU's stdout and resolves
 * once the guest prints anything (it runs) or the time is up, QEMU exits or fails (it does not).
 * QEMU is killed either way.
 */
export function probeAccelerator(options: ProbeOptions): Promise<ProbeResult> {
  const accelerator = options.accelerator ?? 'kvm';
  const timeoutMs = options.timeoutMs ?? 20_000;
  const qemu = spawnTied(
    options.qemu ?? 'qemu-system-x86_64',
    [
      ...['-accel', accelerator, '-m', '128', '-smp', '1', '-nodefaults', '-no-reboot'],
      ...['-display', 'none', '-monitor', 'none', '-serial', 'stdio'],
      ...['-kernel', options.kernel],
      // Early console: the kernel's first line comes right after it decompresses itself.
      ...['-append', 'console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  qemu.stderr!.setEncoding('utf8');
  qemu.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const said = (): string => {
    const text = stderr.trim().split('\n')[0]?.trim();
    return text ? ` (qemu: ${text.replace(/^qemu-system-x86_64: /, '')})` : '';
  };
  return new Promise<ProbeResult>((resolve, reject) => {
    const finish = (result: ProbeResult | Error): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      qemu.stdout!.off('data', onOutput);
      qemu.off('close', onExit);
      qemu.kill('SIGKILL');
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onOutput = (): void => finish({ runs: true });
    const onExit = (code: number | null): void =>
      finish({ runs: false, why: `QEMU exited with ${code} before the guest printed anything${said()}` });
    const onAbort = (): void => finish(options.signal!.reason as Error);
    const timer = setTimeout(
      () =>
        finish({
          runs: false,
          why: `a probe guest printed nothing within ${timeoutMs / 1000} s under -accel ${accelerator}${said()}`,
        }),
      timeoutMs,
    );
    qemu.stdout!.on('data', onOutput);
    qemu.once('close', onExit); // 'close': its stderr is all read by then
    qemu.once('error', (error) => finish({ runs: false, why: `QEMU could not start: ${error.message}` }));
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Options of {@link chooseAccelerator}. */
export interface ChooseOptions extends Omit<ProbeOptions, 'accelerator'> {
  /** Where `VACCEL_VM_ACCEL` is read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** The KVM device (default `/dev/kvm`). */
  device?: string;
  /** The on-disk cache (default `$XDG_CACHE_HOME/vaccel/accelerator.json`); `false` for none. */
  cacheFile?: string | false;
}

const choices = new Map<string, Promise<AcceleratorChoice>>();

/**
 * The accelerator QEMU should use here: `VACCEL_VM_ACCEL` (`kvm`, `tcg`, or `auto`, the default),
 * else KVM only if the KVM device opens read-write and a probe guest runs under it, else TCG, with
 * the reason. Probed once per process and cached on disk per host boot and QEMU binary.
 * @throws Error when `VACCEL_VM_ACCEL` is not `auto`, `kvm` or `tcg`.
 */
export function chooseAccelerator(options: ChooseOptions): Promise<AcceleratorChoice> {
  const forced = (options.env ?? process.env).VACCEL_VM_ACCEL?.trim().toLowerCase() || 'auto';
  if (forced === 'kvm' || forced === 'tcg')
    return Promise.resolve({ accelerator: forced, reason: `VACCEL_VM_ACCEL=${forced}` });
  if (forced !== 'auto')
    return Promise.reject(new Error(`VACCEL_VM_ACCEL must be auto, kvm or tcg, got ${forced}`));
  const device = options.device ?? '/dev/kvm';
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const key = `${device}\n${qemu}`;
  let choice = choices.get(key);
  if (!choice) {
    choice = probeOnce({ ...options, device, qemu });
    choices.set(key, choice);
    // A cancelled probe decides nothing: the next caller probes again.
    choice.catch(() => choices.delete(key));
  }
  return choice;
}

async function probeOnce(
  options: ChooseOptions & { device: string; qemu: string },
): Promise<AcceleratorChoice> {
  try {
    accessSync(options.device, constants.R_OK | constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      accelerator: 'tcg',
      reason:
        code === 'ENOENT'
          ? `${options.device} is absent`
          : `${options.device} cannot be opened read-write by this user (${code})`,
    };
  }
  const cacheFile = options.cacheFile === undefined ? defaultCacheFile() : options.cacheFile;
  const stamp = machineStamp(options.qemu, options.device);
  const cached = cacheFile && stamp ? readCache(cacheFile, stamp) : undefined;
  if (cached) return { ...cached, reason: `${cached.reason} (probed earlier this boot)` };
  const probe = await probeAccelerator({ ...options, accelerator: 'kvm' });
  const choice: AcceleratorChoice = probe.runs
    ? { accelerator: 'kvm', reason: 'a probe guest ran under KVM' }
    : { accelerator: 'tcg', reason: `KVM does not run a guest here: ${probe.why}` };
  if (cacheFile && stamp) writeCache(cacheFile, stamp, choice);
  return choice;
}

function defaultCacheFile(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vaccel', 'accelerator.json');
}

/** What must not change for a cached answer to hold: this boot of the host, the KVM device, QEMU's build. */
function machineStamp(qemu: string, device: string): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const path = qemu.includes('/')
      ? qemu
      : (process.env.PATH ?? '')
          .split(':')
          .map((dir) => join(dir, qemu))
          .find((candidate) => {
            try {
              return statSync(candidate).isFile();
            } catch {
              return false;
            }
          });
    if (!path) return undefined;
    const stat = statSync(path);
    const kvm = statSync(device);
    return `${boot} ${device} ${kvm.rdev} ${kvm.ino} ${kvm.ctimeMs} ${path} ${stat.size} ${stat.mtimeMs}`;
  } catch {
    return undefined;
  }
}

function readCache(file: string, stamp: string): AcceleratorChoice | undefined {
  try {
    const entry = JSON.parse(readFileSync(file, 'utf8')) as Partial<AcceleratorChoice> & { stamp?: string };
    if (entry.stamp !== stamp || (entry.accelerator !== 'kvm' && entry.accelerator !== 'tcg'))
      return undefined;
    return { accelerator: entry.accelerator, reason: String(entry.reason) };
  } catch {
    return undefined;
  }
}

function writeCache(file: string, stamp: string, choice: AcceleratorChoice): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ stamp, ...choice })}\n`);
  } catch {
    // A cache that cannot be written only means probing again next time.
  }
}

/** "KVM" or "TCG (software emulation)", for figures and logs. */
export function describeAccelerator(accelerator: Accelerator): string {
  return accelerator === 'kvm' ? 'KVM' : 'TCG (software emulation)';
}
