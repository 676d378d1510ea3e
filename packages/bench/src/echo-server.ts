/**
 * A bare ttRPC server (no vAccel) for the transport floor of `vaccel-bench rpc`: run as its own
 * process, it answers `bench.Echo/Echo` with an empty reply. Usage: echo-server.js <socket path>.
 * @module
 */
import { createServer } from 'node:net';
import { Server } from '@vaccel/ttrpc';

export const ECHO_SERVICE = 'bench.Echo';
export const ECHO_METHOD = 'Echo';

const path = process.argv[2];
if (path && process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const server = new Server({ maxFrame: 64 << 20 });
  // The handler keeps nothing: big requests are read into reused buffers, as the agent's are.
  server.register(ECHO_SERVICE, { [ECHO_METHOD]: () => new Uint8Array(0) }, { borrowing: [ECHO_METHOD] });
  const listener = createServer();
  server.listen(listener);
  listener.listen(path, () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => {
    server.close();
    process.exit(0);
  });
}
