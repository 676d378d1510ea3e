// Noop round trips from this guest to the agent over each transport given as NAME=ADDRESS,
// interleaved call by call so that every transport sees the same guest load; prints one JSON
// line {"NAME": [microseconds, ...], ...}. Run by `vaccel-vm bench transports`.
import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';

const rounds = Number(process.env.ROUNDS ?? 300);
const paths = [];
for (const argument of process.argv.slice(2)) {
  const at = argument.indexOf('=');
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: argument.slice(at + 1) })] });
  paths.push({ name: argument.slice(0, at), vaccel, session: await vaccel.createSession(), samples: [] });
}
for (let round = -20; round < rounds; round++) {
  for (const path of paths) {
    const started = process.hrtime.bigint();
    await path.session.noop();
    if (round >= 0) path.samples.push(Number(process.hrtime.bigint() - started) / 1e3);
  }
}
console.log(`VACCEL_TRANSPORTS ${JSON.stringify(Object.fromEntries(paths.map((p) => [p.name, p.samples])))}`);
for (const path of paths) {
  await path.session[Symbol.asyncDispose]();
  await path.vaccel[Symbol.asyncDispose]();
}
