/**
 * The parts of TensorFlow Lite's flatbuffer schema (tensorflow/lite/schema/schema.fbs) the
 * converter reads: enum values and, per builtin operator, the fields of its options table.
 * @module
 */

/** `TensorType` values, by name. */
export const TENSOR_TYPES = [
  'float32',
  'float16',
  'int32',
  'uint8',
  'int64',
  'string',
  'bool',
  'int16',
  'complex64',
  'int8',
  'float64',
  'complex128',
  'uint64',
  'resource',
  'variant',
  'uint32',
  'uint16',
  'int4',
] as const;

/** A tensor's element type. */
export type TfliteDtype = (typeof TENSOR_TYPES)[number];

/** Bytes per element (0: not a fixed-width type the converter handles). */
export const ELEMENT_BYTES: Readonly<Record<TfliteDtype, number>> = {
  float32: 4,
  float16: 2,
  int32: 4,
  uint8: 1,
  int64: 8,
  string: 0,
  bool: 1,
  int16: 2,
  complex64: 8,
  int8: 1,
  float64: 8,
  complex128: 16,
  uint64: 8,
  resource: 0,
  variant: 0,
  uint32: 4,
  uint16: 2,
  int4: 0,
};

/** `BuiltinOperator` names by code (0 … 127; later codes are named `BUILTIN_<code>`). */
export const BUILTIN_OPERATORS: readonly string[] = (
  'ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE ' +
  'EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D ' +
  'LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 ' +
  'RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS ' +
  'SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER ' +
  'BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE ' +
  'UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT ' +
  'LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG ' +
  'PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE ' +
  'EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD ' +
  'REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV ' +
  'REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU ' +
  'SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE ' +
  'RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE ' +
  'NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM ' +
  'BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM'
).split(' ');

/** The builtin code of `CUSTOM`. */
export const CUSTOM_CODE = 32;

/** The name of a builtin operator code. */
export const builtinName = (code: number): string => BUILTIN_OPERATORS[code] ?? `BUILTIN_${code}`;

/** A scalar field of an options table: its name, type and default. */
export type OptionField = readonly [name: string, type: 'u8' | 'bool' | 'i32' | 'f32', fallback: number];

const padding = ['padding', 'u8', 0] as const; // Padding: SAME 0, VALID 1
const activation = ['fused_activation_function', 'u8', 0] as const;
const pool: readonly OptionField[] = [
  padding,
  ['stride_w', 'i32', 1],
  ['stride_h', 'i32', 1],
  ['filter_width', 'i32', 1],
  ['filter_height', 'i32', 1],
  activation,
];
const reducer: readonly OptionField[] = [['keep_dims', 'bool', 0]];

/**
 * The fields of each builtin operator's options table the converter reads, in schema order
 * (a `null` holds the place of a field it skips).
 */
export const OPTION_FIELDS: Readonly<Record<string, readonly (OptionField | null)[]>> = {
  CONV_2D: [
    padding,
    ['stride_w', 'i32', 1],
    ['stride_h', 'i32', 1],
    activation,
    ['dilation_w_factor', 'i32', 1],
    ['dilation_h_factor', 'i32', 1],
  ],
  DEPTHWISE_CONV_2D: [
    padding,
    ['stride_w', 'i32', 1],
    ['stride_h', 'i32', 1],
    ['depth_multiplier', 'i32', 0],
    activation,
    ['dilation_w_factor', 'i32', 1],
    ['dilation_h_factor', 'i32', 1],
  ],
  AVERAGE_POOL_2D: pool,
  MAX_POOL_2D: pool,
  ADD: [activation],
  SUB: [activation],
  MUL: [activation],
  DIV: [activation],
  CONCATENATION: [['axis', 'i32', 0], activation],
  FULLY_CONNECTED: [activation, ['weights_format', 'u8', 0], ['keep_num_dims', 'bool', 0]],
  SOFTMAX: [['beta', 'f32', 1]],
  MEAN: reducer,
  SUM: reducer,
  REDUCE_MAX: reducer,
  RESIZE_BILINEAR: [null, null, ['align_corners', 'bool', 0], ['half_pixel_centers', 'bool', 0]],
  RESIZE_NEAREST_NEIGHBOR: [
    ['align_corners', 'bool', 0],
    ['half_pixel_centers', 'bool', 0],
  ],
  LEAKY_RELU: [['alpha', 'f32', 0]],
  TRANSPOSE_CONV: [padding, ['stride_w', 'i32', 1], ['stride_h', 'i32', 1], activation],
};
