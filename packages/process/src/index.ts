/**
 * Child processes that never outlive the process that started them.
 *
 * A harness (the VM runner, a benchmark, a test) that starts QEMU, an agent or a device backend
 * must not leave it running when the harness ends, however it ends: an error, a timeout, SIGTERM,
 * or SIGKILL of a test file. Two ties, both applied:
 * - on Linux, the child is started through util-linux's `setpriv --pdeathsig KILL`, so the kernel
 *   kills it the moment its parent dies, even by SIGKILL (prctl `PR_SET_PDEATHSIG`, kept across
 *   the exec of the real command); a parent that died before the prctl is caught by a check of the
 *   child's parent right after it;
 * - every tied child still running when this process exits normally is sent SIGKILL.
 * @module
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** How tied children die with this process here. */
export type Tie = 'pdeathsig' | 'exit-hook';

let setprivPath: string | null | undefined;

/** `setpriv` on PATH (util-linux, essential on Debian), or null. */
function setpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform === 'linux') {
    for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
      const candidate = join(dir || '.', 'setpriv');
      try {
        accessSync(candidate, constants.X_OK);
        setprivPath = candidate;
        break;
      } catch {
        // not in this folder
      }
    }
  }
  return setprivPath;
}

let hasShell: boolean | undefined;

/** Whether `/bin/sh` is here to run {@link ORPHAN_GUARD} (a distroless image has none). */
function shell(): boolean {
  if (hasShell === undefined) {
    try {
      accessSync('/bin/sh', constants.X_OK);
      hasShell = true;
    } catch {
      hasShell = false;
    }
  }
  return hasShell;
}

/**
 * How children started by {@link spawnTied} are tied to this process: `pdeathsig` (the kernel
 * kills them when it dies, however it dies) or only `exit-hook` (killed when it exits normally;
 * install util-linux for the stronger tie).
 */
export function tie(): Tie {
  return setpriv() ? 'pdeathsig' : 'exit-hook';
}

/**
 * Run by `sh` between setpriv and the command (each execs the next, so the pid stays the
 * command's): a parent that died before setpriv set the parent-death signal sends none (the
 * child is already someone else's), so the child checks that its parent is still the process that
 * started it ($0) and exits if not, instead of running on as an orphan. Seen on a loaded machine.
 * @internal
 */
export const ORPHAN_GUARD = 'if [ "$PPID" != "$0" ]; then exit 129; fi; exec "$@"';

const live = new Set<ChildProcess>();
let hooked = false;

function killLive(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * `child_process.spawn`, with the child tied to this process (see the module's notes): it dies when
 * this process dies. Its `pid` is the command's own (setpriv execs it). A missing command shows as
 * exit code 127 (from the shell that would exec it) rather than an `error` event, where setpriv is used.
 */
export function spawnTied(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const wrapper = setpriv();
  // Without a shell (a distroless image) the command follows setpriv directly, unguarded.
  const guard = shell() ? ['/bin/sh', '-c', ORPHAN_GUARD, String(process.pid)] : [];
  const child = wrapper
    ? spawn(wrapper, ['--pdeathsig', 'KILL', '--', ...guard, command, ...args], options)
    : spawn(command, args, options);
  if (child.pid === undefined) return child; // failed to start: nothing to tie
  if (!hooked) {
    hooked = true;
    process.on('exit', killLive);
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** True while `pid` names a process that has not died (a zombie counts as dead). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // Linux: an exited child that nobody has reaped yet is a zombie ('Z') until its new parent waits.
    return !/^\d+ \(.*\) [ZX] /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (error) {
    // Gone between the two looks, or no /proc here (then kill(0) is all there is).
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || process.platform !== 'linux';
  }
}

/**
 * Resolves once `pid` has died (polled: a process that is not our child gives no event), or
 * rejects when `signal` aborts first.
 */
export async function processGone(pid: number, signal?: AbortSignal): Promise<void> {
  while (processAlive(pid)) {
    signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
