// What the VM tests need on the host, and why they skip (visibly) when it is missing.
import { spawnSync } from 'node:child_process';

const has = (command: string, ...args: string[]) => spawnSync(command, args).status === 0;

/** Why a VM test cannot run here, or false: QEMU, apt (for the guest build), and `tools`. */
export function vmSkipReason(tools: readonly 'openssl'[] = []): string | false {
  if (!has('qemu-system-x86_64', '--version'))
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86; .ci/run does it)';
  if (!has('apt-get', '--version')) return 'apt-get is not available to fetch the guest kernel and tools';
  if (tools.includes('openssl') && !has('openssl', 'version'))
    return 'the openssl command is not installed (apt-get install openssl; .ci/run does it)';
  return false;
}

/**
 * Hang guards, not speed checks: a TCG guest on a machine with other work beside it boots and runs
 * many times slower than alone, and a VM test must fail only when the guest hangs.
 */
export const GUEST_TIMEOUT_S = 900;
/** A test's guard: its guest's, plus the guest build and the host side. */
export const TEST_TIMEOUT_MS = (GUEST_TIMEOUT_S + 120) * 1000;
/** A suite's guard: its tests one after another. */
export const SUITE_TIMEOUT_MS = 4 * TEST_TIMEOUT_MS;
