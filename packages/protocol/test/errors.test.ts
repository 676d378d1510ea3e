import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { ErrorCodes } from '@vaccel/core';
import { detailErrno, ERROR_TYPE_URL, errorDetail } from '@vaccel/protocol';
import fc from 'fast-check';
import { ErrorSchema, ErrorType } from '../src/gen/error_pb.js';

test('the vaccel.Error detail is written and read as protobuf-es does', () => {
  fc.assert(
    fc.property(fc.nat({ max: 2 ** 32 - 1 }), (errno) => {
      const ours = errorDetail(errno);
      const theirs = toBinary(ErrorSchema, create(ErrorSchema, { type: ErrorType.FFI, ffiError: errno }));
      assert.deepEqual(Buffer.from(ours.value), Buffer.from(theirs));
      assert.equal(ours.typeUrl, ERROR_TYPE_URL);
      assert.equal(fromBinary(ErrorSchema, ours.value).ffiError, errno);
      assert.equal(detailErrno([ours]), errno);
    }),
  );
  // A detail with a status but no errno (upstream's FFI_WITH_STATUS) maps to EBACKEND; junk bytes
  // and foreign type URLs are ignored.
  const status = toBinary(
    ErrorSchema,
    create(ErrorSchema, { type: ErrorType.FFI_WITH_STATUS, status: { code: 3, message: 'x' } }),
  );
  assert.equal(
    detailErrno([{ $typeName: 'google.protobuf.Any', typeUrl: ERROR_TYPE_URL, value: status }]),
    ErrorCodes.EPROTO,
  );
  assert.equal(
    detailErrno([
      { $typeName: 'google.protobuf.Any', typeUrl: ERROR_TYPE_URL, value: new Uint8Array([0x10]) },
    ]),
    undefined,
  );
  assert.equal(
    detailErrno([
      { $typeName: 'google.protobuf.Any', typeUrl: 'x/other.Error', value: errorDetail(5).value },
    ]),
    undefined,
  );
});
