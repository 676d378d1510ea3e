/**
 * Typed operation arguments, as upstream vAccel's `struct vaccel_arg` and `genop.Arg`.
 *
 * Numbers inside args are little-endian (upstream sends raw native memory and every supported
 * target is little-endian; docs/protocol.md §5). Builders here make args without copying big
 * arrays; readers validate the type and size and throw `EINVAL` naming the argument.
 * @module
 */
import { VaccelError } from './error.js';

/** Arg types; numbers equal upstream's `vaccel_arg_type_t` and the proto enum. */
export const ArgType = Object.freeze({
  Raw: 0,
  Int8: 1,
  Int8Array: 2,
  Int16: 3,
  Int16Array: 4,
  Int32: 5,
  Int32Array: 6,
  Int64: 7,
  Int64Array: 8,
  Uint8: 9,
  Uint8Array: 10,
  Uint16: 11,
  Uint16Array: 12,
  Uint32: 13,
  Uint32Array: 14,
  Uint64: 15,
  Uint64Array: 16,
  Float32: 17,
  Float32Array: 18,
  Float64: 19,
  Float64Array: 20,
  Bool: 21,
  BoolArray: 22,
  Char: 23,
  CharArray: 24,
  Uchar: 25,
  UcharArray: 26,
  String: 27,
  Buffer: 28,
  Custom: 29,
} as const);

/** An arg type number from {@link ArgType}. */
export type ArgType = (typeof ArgType)[keyof typeof ArgType];

/** One operation argument. `buf` is a view: builders do not copy typed arrays. */
export interface Arg {
  /** What the bytes are. */
  type: ArgType;
  /** The bytes. Plugins fill write args in place, or replace `buf` where an op says outputs are sized by the plugin. */
  buf: Uint8Array;
  /** For {@link ArgType.Custom}: the user's type id. */
  customTypeId?: number;
}

const T = ArgType;
// biome-ignore format: a table reads better aligned
const scalarSize: ReadonlyMap<number, number> = new Map([
  [T.Int8, 1], [T.Uint8, 1], [T.Bool, 1], [T.Char, 1], [T.Uchar, 1],
  [T.Int16, 2], [T.Uint16, 2], [T.Int32, 4], [T.Uint32, 4], [T.Float32, 4],
  [T.Int64, 8], [T.Uint64, 8], [T.Float64, 8],
]);
// biome-ignore format: a table reads better aligned
const arrayElementSize: ReadonlyMap<number, number> = new Map([
  [T.Int8Array, 1], [T.Uint8Array, 1], [T.BoolArray, 1], [T.CharArray, 1], [T.UcharArray, 1],
  [T.Int16Array, 2], [T.Uint16Array, 2], [T.Int32Array, 4], [T.Uint32Array, 4], [T.Float32Array, 4],
  [T.Int64Array, 8], [T.Uint64Array, 8], [T.Float64Array, 8],
]);
const typeNames = new Map(Object.entries(ArgType).map(([name, value]) => [value as number, name]));

/** The name of an arg type (`Float32Array`), or `type#<n>`. */
export function argTypeName(type: number): string {
  return typeNames.get(type) ?? `type#${type}`;
}

/** True when `type` is a known arg type number. */
export function isArgType(type: number): type is ArgType {
  return typeNames.has(type);
}

/**
 * Checks an arg against upstream's unpack rules (docs/protocol.md §4): scalars have exactly their
 * size, arrays are non-empty whole multiples of the element size, strings end in NUL, buffers are
 * non-empty; raw and custom are not checked.
 * @throws VaccelError `EINVAL` naming `where`.
 */
export function validateArg(arg: Arg, where: string, index?: number): void {
  const problem = argProblem(arg);
  // The message is built only on failure: this runs for every arg of every op.
  if (problem !== undefined)
    throw new VaccelError('EINVAL', `${index === undefined ? where : `${where} ${index}`}: ${problem}`);
}

/** What is wrong with an arg under upstream's rules, or undefined. */
function argProblem(arg: Arg): string | undefined {
  const size = arg.buf.byteLength;
  if (!isArgType(arg.type)) return `unknown arg type ${arg.type}`;
  const scalar = scalarSize.get(arg.type);
  if (scalar !== undefined && size !== scalar)
    return `${argTypeName(arg.type)} needs ${scalar} bytes, got ${size}`;
  const element = arrayElementSize.get(arg.type);
  if (element !== undefined && (size === 0 || size % element !== 0))
    return `${argTypeName(arg.type)} needs a non-empty multiple of ${element} bytes, got ${size}`;
  if (arg.type === T.String && (size === 0 || arg.buf[size - 1] !== 0)) return 'String must end in NUL';
  if (arg.type === T.Buffer && size === 0) return 'Buffer must not be empty';
  return undefined;
}

// ---- builders ---------------------------------------------------------------------------------

function scalar(type: ArgType, size: number, write: (view: DataView) => void): Arg {
  const buf = new Uint8Array(size);
  write(new DataView(buf.buffer));
  return { type, buf };
}

const bytesOf = (view: ArrayBufferView): Uint8Array =>
  new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Builders for args. Typed arrays are wrapped, not copied. */
export const Args = Object.freeze({
  uint8: (v: number): Arg => scalar(T.Uint8, 1, (d) => d.setUint8(0, v)),
  int32: (v: number): Arg => scalar(T.Int32, 4, (d) => d.setInt32(0, v, true)),
  uint32: (v: number): Arg => scalar(T.Uint32, 4, (d) => d.setUint32(0, v, true)),
  int64: (v: number | bigint): Arg => scalar(T.Int64, 8, (d) => d.setBigInt64(0, BigInt(v), true)),
  uint64: (v: number | bigint): Arg => scalar(T.Uint64, 8, (d) => d.setBigUint64(0, BigInt(v), true)),
  float32: (v: number): Arg => scalar(T.Float32, 4, (d) => d.setFloat32(0, v, true)),
  float64: (v: number): Arg => scalar(T.Float64, 8, (d) => d.setFloat64(0, v, true)),
  /** A NUL-terminated UTF-8 string. */
  string: (s: string): Arg => {
    const encoded = utf8.encode(s);
    const buf = new Uint8Array(encoded.length + 1);
    buf.set(encoded);
    return { type: T.String, buf };
  },
  /** Opaque bytes; must not be empty. */
  buffer: (bytes: ArrayBufferView): Arg => ({ type: T.Buffer, buf: bytesOf(bytes) }),
  /** Unchecked bytes; may be empty. */
  raw: (bytes: ArrayBufferView = new Uint8Array(0)): Arg => ({ type: T.Raw, buf: bytesOf(bytes) }),
  float32Array: (values: Float32Array): Arg => ({ type: T.Float32Array, buf: bytesOf(values) }),
  float64Array: (values: Float64Array): Arg => ({ type: T.Float64Array, buf: bytesOf(values) }),
  int32Array: (values: Int32Array): Arg => ({ type: T.Int32Array, buf: bytesOf(values) }),
  int64Array: (values: BigInt64Array): Arg => ({ type: T.Int64Array, buf: bytesOf(values) }),
  uint8Array: (values: Uint8Array): Arg => ({ type: T.Uint8Array, buf: values }),
  ucharArray: (values: Uint8Array): Arg => ({ type: T.UcharArray, buf: values }),
});

// ---- readers ----------------------------------------------------------------------------------

function expect(arg: Arg | undefined, types: readonly ArgType[], where: string): Arg {
  if (arg === undefined) throw new VaccelError('EINVAL', `${where}: missing argument`);
  if (!types.includes(arg.type)) {
    const want = types.map(argTypeName).join(' or ');
    throw new VaccelError('EINVAL', `${where}: expected ${want}, got ${argTypeName(arg.type)}`);
  }
  validateArg(arg, where);
  return arg;
}

const view = (arg: Arg): DataView => new DataView(arg.buf.buffer, arg.buf.byteOffset, arg.buf.byteLength);

/** Converts an int64 to a safe integer number or throws EINVAL. */
function safeNumber(value: bigint, where: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new VaccelError('EINVAL', `${where}: ${value} is out of range`);
  }
  return Number(value);
}

/** Readers that check an arg's type and size, throwing `EINVAL` that names `where`. */
export const ReadArg = Object.freeze({
  uint8: (arg: Arg | undefined, where: string): number => view(expect(arg, [T.Uint8], where)).getUint8(0),
  int32: (arg: Arg | undefined, where: string): number =>
    view(expect(arg, [T.Int32], where)).getInt32(0, true),
  uint32: (arg: Arg | undefined, where: string): number =>
    view(expect(arg, [T.Uint32], where)).getUint32(0, true),
  /** An INT64 as a safe integer number. */
  int64: (arg: Arg | undefined, where: string): number =>
    safeNumber(view(expect(arg, [T.Int64], where)).getBigInt64(0, true), where),
  /** A UINT64 as a safe integer number. */
  uint64: (arg: Arg | undefined, where: string): number =>
    safeNumber(view(expect(arg, [T.Uint64], where)).getBigUint64(0, true), where),
  float32: (arg: Arg | undefined, where: string): number =>
    view(expect(arg, [T.Float32], where)).getFloat32(0, true),
  /** A NUL-terminated UTF-8 string, without its NUL. */
  string: (arg: Arg | undefined, where: string): string => {
    const { buf } = expect(arg, [T.String], where);
    try {
      return utf8Decoder.decode(buf.subarray(0, buf.byteLength - 1));
    } catch (cause) {
      throw new VaccelError('EINVAL', `${where}: string is not valid UTF-8`, { cause });
    }
  },
  /** The bytes of an arg of any of `types` (default: any type). */
  bytes: (
    arg: Arg | undefined,
    where: string,
    types: readonly ArgType[] = Object.values(ArgType),
  ): Uint8Array => expect(arg, types, where).buf,
  /** A FLOAT32_ARRAY as a Float32Array view (a copy when the bytes are not 4-aligned). */
  float32Array: (arg: Arg | undefined, where: string): Float32Array =>
    alignedFloat32(expect(arg, [T.Float32Array], where).buf),
});

/**
 * A copy of `bytes` in a fresh ArrayBuffer of exactly its size. (Not `bytes.slice()`: on a Node
 * Buffer that is a view, and its `.buffer` is a shared pool slab.)
 */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/** A Float32Array over `bytes`: a view when aligned, else a copy (wire buffers may sit at odd offsets). */
export function alignedFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0)
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(copyBytes(bytes).buffer);
}
