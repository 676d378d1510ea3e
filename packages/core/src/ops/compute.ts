/**
 * The small compute ops upstream defines with genop layouts (docs/protocol.md §5): MINMAX (22)
 * and the FPGA example kernels ARRAYCOPY (18), MMULT (19), PARALLEL (20), VECTORADD (21). Upstream
 * does not type-check their args, so neither do we: any arg type is read as raw little-endian
 * memory, but sizes are checked (upstream would read past a short buffer; we answer `EINVAL`).
 *
 * | op | read | write |
 * |---|---|---|
 * | MINMAX | f64[] data, i32 ndata, i32 low, i32 high | f64[] out, f64 min, f64 max |
 * | FPGA_ARRAYCOPY | i32[] a | i32[] copy of a |
 * | FPGA_MMULT | f32[] a, f32[] b (n×n each) | f32[] c = a·b (n×n) |
 * | FPGA_PARALLEL | f32[] a, f32[] b | f32[] a+b, f32[] a·b (element-wise) |
 * | FPGA_VECTORADD | f32[] a, f32[] b | f32[] a+b |
 *
 * MINMAX clamps each value to [low, high] into `out` and reports the smallest and largest clamped
 * value (upstream's only implementation is the noop plugin's dummy; this is the thresholded min/max
 * its arguments describe).
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import { OpType } from '../api/op.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';
import type { SgemmArgs } from './blas.js';

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function counts(name: string, read: readonly Arg[], write: readonly Arg[], r: number, w: number): void {
  if (read.length !== r || write.length !== w)
    throw new VaccelError(
      'EINVAL',
      `${name} takes ${r} read and ${w} write args, got ${read.length} and ${write.length}`,
    );
}

/** Little-endian numbers of an arg of any type, `size` bytes each. */
function numbers(arg: Arg | undefined, size: 4 | 8, float: boolean, where: string): number[] {
  const bytes = ReadArg.bytes(arg, where);
  if (bytes.byteLength % size !== 0)
    throw new VaccelError(
      'EINVAL',
      `${where}: ${bytes.byteLength} bytes is not a whole number of ${size}-byte values`,
    );
  const v = view(bytes);
  return Array.from({ length: bytes.byteLength / size }, (_, i) =>
    size === 8 ? v.getFloat64(i * 8, true) : float ? v.getFloat32(i * 4, true) : v.getInt32(i * 4, true),
  );
}

/** Writes numbers into a write arg that must hold exactly them. */
function put(
  arg: Arg | undefined,
  values: ArrayLike<number>,
  size: 4 | 8,
  float: boolean,
  where: string,
): void {
  const bytes = ReadArg.bytes(arg, where);
  if (bytes.byteLength !== values.length * size)
    throw new VaccelError(
      'EINVAL',
      `${where}: needs ${values.length * size} bytes, the arg has ${bytes.byteLength}`,
    );
  const v = view(bytes);
  for (let i = 0; i < values.length; i++) {
    if (size === 8) v.setFloat64(i * 8, values[i]!, true);
    else if (float) v.setFloat32(i * 4, values[i]!, true);
    else v.setInt32(i * 4, values[i]!, true);
  }
}

const int32Scalar = (arg: Arg | undefined, where: string): number => {
  const [value] = numbers(arg, 4, false, where);
  if (value === undefined || ReadArg.bytes(arg, where).byteLength !== 4)
    throw new VaccelError('EINVAL', `${where} must be one 4-byte integer`);
  return value;
};

const minmax: OpHandler = ({ read, write }) => {
  counts('minmax', read, write, 4, 3);
  const data = numbers(read[0], 8, true, 'minmax data');
  const n = int32Scalar(read[1], 'minmax ndata');
  const [low, high] = [int32Scalar(read[2], 'minmax low'), int32Scalar(read[3], 'minmax high')];
  if (n < 1 || n > data.length)
    throw new VaccelError('EINVAL', `minmax: ndata ${n} must be 1–${data.length} (the doubles given)`);
  if (low > high) throw new VaccelError('EINVAL', `minmax: low ${low} is above high ${high}`);
  const out = data.slice(0, n).map((x) => Math.min(Math.max(x, low), high));
  put(write[0], out, 8, true, 'minmax out');
  put(write[1], [Math.min(...out)], 8, true, 'minmax min');
  put(write[2], [Math.max(...out)], 8, true, 'minmax max');
};

const arrayCopy: OpHandler = ({ read, write }) => {
  counts('fpga_arraycopy', read, write, 1, 1);
  put(write[0], numbers(read[0], 4, false, 'fpga_arraycopy a'), 4, false, 'fpga_arraycopy out');
};

function pair(name: string, read: readonly Arg[]): [number[], number[]] {
  const a = numbers(read[0], 4, true, `${name} a`);
  const b = numbers(read[1], 4, true, `${name} b`);
  if (a.length !== b.length)
    throw new VaccelError('EINVAL', `${name}: a has ${a.length} floats, b ${b.length}`);
  return [a, b];
}

const vectorAdd: OpHandler = ({ read, write }) => {
  counts('fpga_vectoradd', read, write, 2, 1);
  const [a, b] = pair('fpga_vectoradd', read);
  put(
    write[0],
    a.map((x, i) => Math.fround(x + b[i]!)),
    4,
    true,
    'fpga_vectoradd c',
  );
};

const parallel: OpHandler = ({ read, write }) => {
  counts('fpga_parallel', read, write, 2, 2);
  const [a, b] = pair('fpga_parallel', read);
  put(
    write[0],
    a.map((x, i) => Math.fround(x + b[i]!)),
    4,
    true,
    'fpga_parallel add_out',
  );
  put(
    write[1],
    a.map((x, i) => Math.fround(x * b[i]!)),
    4,
    true,
    'fpga_parallel mul_out',
  );
};

/** FPGA_MMULT on an SGEMM implementation: a and b are square n×n, row-major. */
export function mmultHandler(sgemm: (args: SgemmArgs, ctx: OpContext) => Promise<void> | void): OpHandler {
  return async ({ read, write }, ctx) => {
    counts('fpga_mmult', read, write, 2, 1);
    const [a, b] = pair('fpga_mmult', read);
    const n = Math.round(Math.sqrt(a.length));
    if (n * n !== a.length || n === 0)
      throw new VaccelError(
        'EINVAL',
        `fpga_mmult: a and b must be square n×n matrices, got ${a.length} floats`,
      );
    const c = new Float32Array(n * n);
    await sgemm(
      {
        m: n,
        n,
        k: n,
        alpha: 1,
        a: Float32Array.from(a),
        lda: n,
        b: Float32Array.from(b),
        ldb: n,
        beta: 0,
        c,
        ldc: n,
      },
      ctx,
    );
    put(write[0], c, 4, true, 'fpga_mmult c');
  };
}

/** The compute op handlers, MMULT on `sgemm`. */
export const computeHandlers = (sgemm: (args: SgemmArgs, ctx: OpContext) => Promise<void> | void) => ({
  [OpType.MinMax]: minmax,
  [OpType.FpgaArrayCopy]: arrayCopy,
  [OpType.FpgaMmult]: mmultHandler(sgemm),
  [OpType.FpgaParallel]: parallel,
  [OpType.FpgaVectorAdd]: vectorAdd,
});

/** Genop args of MINMAX, as upstream packs them. */
export function packMinmax(data: Float64Array, low: number, high: number): { read: Arg[]; write: Arg[] } {
  return {
    read: [Args.float64Array(data), Args.int32(data.length), Args.int32(low), Args.int32(high)],
    write: [Args.float64Array(new Float64Array(data.length)), Args.float64(0), Args.float64(0)],
  };
}
