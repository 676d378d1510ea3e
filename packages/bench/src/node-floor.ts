/**
 * The Node floor for `vaccel-bench rpc`: a bare net.Socket echo in its own process, no framing,
 * no RPC. What any Node server and client pay for a round trip on this machine, between the C
 * floor and our ttRPC.
 * @module
 */
import { mkdtempSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTied } from '@vaccel/process';

const SERVER = `
const net = require('node:net');
const server = net.createServer((s) => s.on('data', (d) => s.write(d)));
server.listen(process.argv[1], () => process.stdout.write('listening\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/** A running Node echo: `roundTrip()` sends 64 bytes and waits for them to come back. */
export interface NodeFloor {
  roundTrip(): Promise<void>;
  stop(): void;
}

export async function startNodeFloor(): Promise<NodeFloor> {
  const path = join(mkdtempSync(join(tmpdir(), 'vaccel-node-floor-')), 'echo.sock');
  const child = spawnTied(process.execPath, ['-e', SERVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`node floor exited with ${code}`)));
  });
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s)).once('error', reject);
  });
  socket.setNoDelay(true);
  const message = Buffer.alloc(64, 1);
  let waiting: (() => void) | undefined;
  let got = 0;
  socket.on('data', (chunk: Buffer) => {
    got += chunk.byteLength;
    if (got >= message.byteLength && waiting) {
      got -= message.byteLength;
      const done = waiting;
      waiting = undefined;
      done();
    }
  });
  return {
    roundTrip: () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        socket.write(message);
      }),
    stop: () => {
      socket.destroy();
      child.kill('SIGTERM');
    },
  };
}
