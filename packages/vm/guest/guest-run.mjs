// Runs the command passed on the kernel command line (vaccel.cmd=<base64url JSON argv>) with the
// RPC plugin pointed at the agent (vaccel.address=ADDR, default the virtio-serial port), and exits
// with its exit code.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const cmdline = readFileSync('/proc/cmdline', 'utf8');
const encoded = /(?:^|\s)vaccel\.cmd=(\S+)/.exec(cmdline)?.[1];
const address =
  /(?:^|\s)vaccel\.address=(\S+)/.exec(cmdline)?.[1] ?? 'virtio-serial:///dev/virtio-ports/vaccel';
if (!encoded) {
  console.error('vaccel-vm guest: no vaccel.cmd= on the kernel command line');
  process.exit(2);
}
const [command, ...args] = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
const env = { ...process.env, VACCEL_RPC_ADDRESS: address };
const result = spawnSync(command, args, { stdio: 'inherit', env, cwd: '/' });
if (result.error) console.error(`vaccel-vm guest: ${result.error.message}`);
process.exit(result.status ?? 1);
