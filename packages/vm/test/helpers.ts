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
