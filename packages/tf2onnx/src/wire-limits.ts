/**
 * Bounds on a protobuf message's wire form, checked by walking the bytes before a parser builds
 * objects from them. A GraphDef of a few hundred MiB (one frame) can hold hundreds of millions of
 * one-byte packed `int_val`s: parsed, they become one JS array, and a JS array past ~112M elements
 * (or one big enough to cross the heap limit in a single allocation) aborts the whole process, a
 * worker's `resourceLimits` notwithstanding (nodejs/node#47224). So the walk counts messages and
 * repeated values, measures strings and nesting, and refuses before `fromBinary` runs.
 * @module
 */
import { type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { isVaccelError, VaccelError } from '@vaccel/core';

/** What a message's wire form may hold. */
export interface WireLimits {
  /** Messages, nested ones included (each becomes an object). */
  readonly maxMessages: number;
  /** Repeated-field values and map entries, all fields together (each becomes an array slot). */
  readonly maxValues: number;
  /** Bytes of one string field (each becomes a JS string; `bytes` fields are views, not copies). */
  readonly maxStringBytes: number;
  /** Nesting depth (the parser recurses once per level). */
  readonly maxDepth: number;
}

/**
 * Limits for a TensorFlow GraphDef. Real graphs hold their weights in `tensor_content` (bytes, not
 * counted) and use the `*_val` lists for scalars and short vectors: a 50k-node graph has about a
 * million messages and far fewer values.
 */
export const GRAPH_WIRE_LIMITS: WireLimits = {
  maxMessages: 2 ** 21,
  maxValues: 2 ** 22,
  maxStringBytes: 2 ** 16,
  maxDepth: 64,
};

/** Bytes per element of packed fixed-width scalars; the others are varints. */
const FIXED_WIDTH: Partial<Record<ScalarType, number>> = {
  [ScalarType.DOUBLE]: 8,
  [ScalarType.FIXED64]: 8,
  [ScalarType.SFIXED64]: 8,
  [ScalarType.FLOAT]: 4,
  [ScalarType.FIXED32]: 4,
  [ScalarType.SFIXED32]: 4,
};

const byNumber = new WeakMap<DescMessage, Map<number, DescField>>();
const fieldsOf = (desc: DescMessage): Map<number, DescField> => {
  let fields = byNumber.get(desc);
  if (!fields) {
    fields = new Map(desc.fields.map((f) => [f.number, f]));
    byNumber.set(desc, fields);
  }
  return fields;
};

/**
 * Walks `bytes` as a `schema` message without building it.
 * @throws VaccelError `E2BIG` past a limit (naming it), `EINVAL` for bytes that are not wire format.
 */
export function checkWireLimits(
  schema: DescMessage,
  bytes: Uint8Array,
  limits: WireLimits,
  what: string,
): void {
  const reader = new BinaryReader(bytes);
  let messages = 0;
  let values = 0;
  const over = (count: string, limit: number) =>
    new VaccelError(
      'E2BIG',
      `${what} holds ${count}, more than the ${limit} the converter parses (big constants belong in tensor_content)`,
    );
  const addValues = (n: number) => {
    values += n;
    if (values > limits.maxValues) throw over(`over ${limits.maxValues} repeated values`, limits.maxValues);
  };
  const string = (len: number) => {
    if (len > limits.maxStringBytes) throw over(`a string of ${len} bytes`, limits.maxStringBytes);
  };
  /** The end of the length-delimited value starting at the reader. */
  const delimited = (end: number): number => {
    const len = reader.uint32();
    const stop = reader.pos + len;
    if (stop > end) throw new Error(`a field of ${len} bytes overruns its message`);
    return stop;
  };
  const walk = (desc: DescMessage, end: number, depth: number): void => {
    if (depth > limits.maxDepth) throw over(`messages nested over ${limits.maxDepth} deep`, limits.maxDepth);
    if (++messages > limits.maxMessages)
      throw over(`over ${limits.maxMessages} messages`, limits.maxMessages);
    while (reader.pos < end) {
      const [no, wireType] = reader.tag();
      const field = fieldsOf(desc).get(no);
      if (wireType !== WireType.LengthDelimited || !field) {
        // A scalar; a repeated one (unpacked) or an unknown field (kept by the parser) takes a slot.
        if (!field || field.fieldKind === 'list') addValues(1);
        reader.skip(wireType, no);
        continue;
      }
      const stop = delimited(end);
      switch (field.fieldKind) {
        case 'message':
          walk(field.message, stop, depth + 1);
          break;
        case 'map':
          addValues(1);
          entry(field, stop, depth + 1);
          break;
        case 'list':
          if (field.listKind === 'message') {
            addValues(1);
            walk(field.message, stop, depth + 1);
          } else if (field.listKind === 'scalar' && field.scalar === ScalarType.STRING) {
            addValues(1);
            string(stop - reader.pos);
          } else if (field.listKind === 'scalar' && field.scalar === ScalarType.BYTES) addValues(1);
          else
            addValues(packedCount(field.listKind === 'scalar' ? field.scalar : undefined, reader.pos, stop));
          break;
        case 'scalar':
          if (field.scalar === ScalarType.STRING) string(stop - reader.pos);
          break;
      }
      if (reader.pos > stop) throw new Error('a nested message overruns its field');
      reader.pos = stop;
    }
    if (reader.pos !== end) throw new Error('a message overruns its field');
  };
  /** A map entry: key 1 (a scalar), value 2 (perhaps a message). */
  const entry = (field: DescField & { fieldKind: 'map' }, end: number, depth: number): void => {
    while (reader.pos < end) {
      const [no, wireType] = reader.tag();
      if (wireType !== WireType.LengthDelimited) {
        reader.skip(wireType, no);
        continue;
      }
      const stop = delimited(end);
      if (no === 2 && field.mapKind === 'message') walk(field.message, stop, depth);
      else if (no === 1 || field.scalar === ScalarType.STRING) string(stop - reader.pos);
      reader.pos = stop;
    }
  };
  /** Elements of a packed run: fixed-width ones by length, varints by their last bytes. */
  const packedCount = (scalar: ScalarType | undefined, start: number, stop: number): number => {
    const width = scalar === undefined ? undefined : FIXED_WIDTH[scalar];
    if (width !== undefined) return Math.ceil((stop - start) / width);
    let n = 0;
    for (let i = start; i < stop; i++) if (bytes[i]! < 0x80) n++;
    return n;
  };
  try {
    walk(schema, bytes.byteLength, 0);
  } catch (error) {
    if (isVaccelError(error)) throw error;
    throw new VaccelError('EINVAL', `${what} is not a ${schema.name}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
