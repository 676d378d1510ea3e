import { fork } from 'node:child_process';
import { createServer } from 'node:net';
import { connect } from '@vaccel/remote';
import { Client, Server } from '@vaccel/ttrpc';

const path = '/tmp/big.sock';
if (process.argv[2] === 'server') {
  const server = new Server({ maxFrame: 64 << 20 });
  server.register('b.E', { E: () => new Uint8Array(0) }, { borrowing: process.env.NOBORROW ? [] : ['E'] });
  const l = createServer();
  server.listen(l);
  l.listen(path, () => process.send!('ready'));
} else {
  try {
    (await import('node:fs')).unlinkSync(path);
  } catch {}
  const child = fork(process.argv[1]!, ['server'], {
    execArgv: [
      ...process.execArgv,
      ...(process.env.SPROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
      ...(process.env.TGC ? ['--trace-gc'] : []),
    ],
  });
  await new Promise((r) => child.once('message', r));
  const c = new Client(await connect(`unix://${path}`), { maxFrame: 64 << 20 });
  const payload = new Uint8Array(4 << 20).fill(7);
  for (let i = 0; i < 20; i++) await c.call('b.E', 'E', payload);
  const N = 200;
  const t0 = process.hrtime.bigint();
  const ts: number[] = [];
  for (let i = 0; i < N; i++) {
    const a = process.hrtime.bigint();
    await c.call('b.E', 'E', payload);
    ts.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  ts.sort((a, b) => a - b);
  console.log('per call µs p10/p50/p90', ts[20], ts[100], ts[180]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log('sequential 4MiB GB/s', ((N * payload.byteLength) / s / 1e9).toFixed(2));
  await c.close();
  child.kill('SIGINT');
}
