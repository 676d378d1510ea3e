import { Args, OpType } from '@vaccel/core';
import { parse, positiveInt, printJson, println, stats } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

export const noopCommand: Command = {
  name: 'noop',
  summary: 'run the noop op (a health check and latency probe)',
  help: `Usage: vaccel noop [--reps N] [--size BYTES] [options]

Runs the noop operation through the full dispatch path and reports its latency. With --size,
sends a read arg of that many bytes and checks it is echoed back in a write arg.

  --reps N         how many calls (default 1000)
  --size BYTES     payload to echo (default 0)

${COMMON_HELP}`,
  async run(args, io) {
    const { values } = parse(args, { reps: { type: 'string' }, size: { type: 'string' } });
    const reps = positiveInt(values.reps, 'reps', 1000);
    const size = values.size === undefined ? 0 : positiveInt(values.size, 'size', 0);
    await using vaccel = await openRuntime(io, values);
    await using session = await vaccel.createSession();
    const payload = new Uint8Array(size).map((_, i) => i & 0xff);
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      const out = Args.raw(new Uint8Array(size));
      const started = performance.now();
      await session.doOperation(OpType.Noop, size > 0 ? [Args.raw(payload)] : [], size > 0 ? [out] : []);
      samples.push(performance.now() - started);
      if (size > 0 && Buffer.compare(out.buf, payload) !== 0)
        throw new Error('noop did not echo the payload back');
    }
    const { median, p99 } = stats(samples);
    const plugin = (await vaccel.listOperations()).find((op) => op.op === OpType.Noop)?.plugin;
    if (values.json)
      printJson(io, { op: 'noop', plugin, reps, size, medianUs: median * 1e3, p99Us: p99 * 1e3 });
    else
      println(
        io,
        `noop via ${plugin}: ${reps} calls, ${size} B payload, median ${(median * 1e3).toFixed(1)} µs, p99 ${(p99 * 1e3).toFixed(1)} µs`,
      );
    return 0;
  },
};
