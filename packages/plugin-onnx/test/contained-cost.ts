/**
 * What containment costs per call: model_run of guest-uploaded models in this process
 * (`modelRunners: 0`) and in a runner process (`modelRunners: 1`), same threads, same run; and,
 * as the floor to compare with in the same run, a bare Node↔Node round trip over the same kind of
 * socket pair (a child echoing what it reads on fd 3). Not a test (asserts nothing); prints
 * medians and 90th percentiles.
 *
 *   node_modules/.bin/tsx --conditions=@vaccel/source packages/plugin-onnx/test/contained-cost.ts [runs]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { ResourceType, type Tensor, tensor, Vaccel } from '@vaccel/core';
import { DataType, initializer, modelBytes, node, onnxPlugin, valueInfo } from '@vaccel/plugin-onnx';

const runs = Number(process.argv[2] ?? 300);

const tiny = modelBytes({
  name: 'tiny',
  nodes: [node('MatMul', ['x', 'W'], ['y'])],
  inputs: [valueInfo('x', DataType.FLOAT, [1, 4])],
  outputs: [valueInfo('y', DataType.FLOAT, [1, 3])],
  initializers: [initializer('W', DataType.FLOAT, [4, 3], new Float32Array(12).fill(0.5))],
});
const sgemm = (n: number) =>
  modelBytes({
    name: 'sgemm',
    nodes: [node('MatMul', ['a', 'b'], ['c'])],
    inputs: [valueInfo('a', DataType.FLOAT, [n, n]), valueInfo('b', DataType.FLOAT, [n, n])],
    outputs: [valueInfo('c', DataType.FLOAT, [n, n])],
  });
const random = (length: number) => Float32Array.from({ length }, () => Math.random());

const cases: { name: string; bytes: Uint8Array; inputs: Record<string, Tensor>; runs: number }[] = [
  { name: 'MatMul [1,4]×[4,3]', bytes: tiny, inputs: { x: tensor('float32', [1, 4], random(4)) }, runs },
  {
    name: 'SGEMM 256 (2×256 KiB in, 256 KiB out)',
    bytes: sgemm(256),
    inputs: {
      a: tensor('float32', [256, 256], random(256 ** 2)),
      b: tensor('float32', [256, 256], random(256 ** 2)),
    },
    runs,
  },
  {
    name: 'NanoDet detector (2 MiB in, 1.4 MiB out)',
    // The shipped NanoDet by name: the default detector (CenterNet) takes another input.
    bytes: new Uint8Array(readFileSync(new URL('../models/nanodet-coco/model.onnx', import.meta.url))),
    inputs: { 'input_1:0': tensor('float32', [1, 3, 416, 416], random(3 * 416 * 416)) },
    runs: Math.max(20, Math.round(runs / 10)),
  },
];

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

/** Median and p90 of a bare round trip of `bytes` through an echoing child. */
async function echoFloor(bytes: number, count: number): Promise<number[]> {
  const child = spawn(
    process.execPath,
    ['-e', "const s = new (require('net').Socket)({ fd: 3, readable: true, writable: true }); s.pipe(s);"],
    { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] },
  );
  const socket = child.stdio[3] as Socket;
  const message = Buffer.alloc(bytes, 1);
  const trip = () =>
    new Promise<void>((resolve) => {
      let got = 0;
      const onData = (chunk: Buffer) => {
        got += chunk.length;
        if (got < bytes) return;
        socket.off('data', onData);
        resolve();
      };
      socket.on('data', onData);
      socket.write(message);
    });
  for (let i = 0; i < 20; i++) await trip();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await trip();
    times.push(performance.now() - started);
  }
  child.kill();
  times.sort((a, b) => a - b);
  return [quantile(times, 0.5), quantile(times, 0.9)];
}

for (const size of [64, 512 * 1024, 3.4 * 2 ** 20]) {
  const [median, p90] = await echoFloor(Math.round(size), runs);
  console.log(`floor: Node↔Node echo of ${Math.round(size)} bytes: median ${fmt(median!)}, p90 ${fmt(p90!)}`);
}

// Both plugins are open at once and calls alternate between them, so that whatever else the
// machine does falls on both alike.
for (const c of cases) {
  const opened = await Promise.all(
    [0, 1].map(async (modelRunners) => {
      const vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1, modelRunners })] });
      const session = await vaccel.createSession();
      const model = await vaccel.createResource({
        type: ResourceType.Model,
        blobs: [{ name: 'm.onnx', data: c.bytes }],
      });
      session.registerResource(model);
      await session.modelLoad(model);
      for (let i = 0; i < Math.min(20, c.runs); i++) await session.modelRun(model, c.inputs);
      return { vaccel, session, model, times: [] as number[] };
    }),
  );
  for (let i = 0; i < c.runs; i++) {
    for (const { session, model, times } of opened) {
      const started = performance.now();
      await session.modelRun(model, c.inputs);
      times.push(performance.now() - started);
    }
  }
  console.log(`${c.name} (${c.runs} runs each, alternating, 1 thread)`);
  const medians = opened.map(({ times }, i) => {
    times.sort((a, b) => a - b);
    console.log(
      `  ${i === 0 ? 'in-process' : 'contained '} median ${fmt(quantile(times, 0.5))}, p90 ${fmt(quantile(times, 0.9))}`,
    );
    return quantile(times, 0.5);
  });
  console.log(`  cost of containment: +${fmt(medians[1]! - medians[0]!)} per call (median)`);
  await Promise.all(opened.map(({ vaccel }) => vaccel.close()));
}
