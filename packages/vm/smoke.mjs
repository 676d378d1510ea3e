import { CryptoBackend } from '@vaccel/vhost-user';
import pino from 'pino';
import { buildGuest } from './dist/build.js';
import { runInGuest } from './dist/run.js';

const image = await buildGuest('/work/main/.vm', { log: console.error });
const backend = await CryptoBackend.listen({
  socket: '/tmp/vc.sock',
  logger: pino({ level: 'debug' }, pino.destination(2)),
});
const r = await runInGuest(image, ['sh', '-c', process.argv[2]], {
  cryptoSocket: '/tmp/vc.sock',
  timeoutSeconds: 120,
});
console.log('exit', r.exitCode, backend.stats());
await backend.close();
