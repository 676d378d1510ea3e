import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { ErrorCodes, errorCodeFromErrno, isVaccelError, isVaccelErrorCode, VaccelError } from '@vaccel/core';

suite('VaccelError', () => {
  // Upstream VACCEL_E* numbers (docs/protocol.md §4): the codes must carry exactly these errnos.
  // biome-ignore format: a table reads better aligned
  const upstream: [keyof typeof ErrorCodes, number][] = [
    ['EINVAL', 22], ['ENOMEM', 12], ['ENOTSUP', 95], ['EINPROGRESS', 115], ['EBUSY', 16], ['EEXIST', 17],
    ['ENOENT', 2], ['ELIBBAD', 80], ['ENODEV', 19], ['EIO', 5], ['ECONNRESET', 104], ['EPROTO', 71],
    ['ENOEXEC', 8], ['ENAMETOOLONG', 36], ['EUSERS', 87], ['EPERM', 1], ['ELOOP', 40], ['EMLINK', 31],
    ['ENOSPC', 28], ['ENOTDIR', 20], ['EROFS', 30], ['EACCES', 13], ['EBADF', 9], ['EREMOTEIO', 121],
    ['EFAULT', 14], ['ERANGE', 34], ['EAGAIN', 11], ['ENOSYS', 38],
  ];

  for (const [code, errno] of upstream) {
    test(`${code} has upstream errno ${errno}`, () => {
      const error = new VaccelError(code);
      assert.equal(error.errno, errno);
      assert.equal(error.code, code);
      assert.equal(error.name, 'VaccelError');
      assert.ok(error.message.length > 0);
      assert.equal(errorCodeFromErrno(errno), code);
    });
  }

  test('errno numbers are unique, so they map back to one code', () => {
    const numbers = Object.values(ErrorCodes);
    assert.equal(new Set(numbers).size, numbers.length);
  });

  test('is an Error with cause, recognised by guard and instanceof', () => {
    const cause = new Error('root');
    const error = new VaccelError('EINVAL', 'bad m', { cause });
    assert.ok(error instanceof Error);
    assert.ok(error instanceof VaccelError);
    assert.equal(error.cause, cause);
    assert.ok(isVaccelError(error));
    assert.ok(isVaccelErrorCode(error, 'EINVAL'));
    assert.ok(!isVaccelErrorCode(error, 'ENOENT'));
    assert.ok(!isVaccelError(new Error('plain')));
    assert.ok(!isVaccelError({ code: 'EINVAL' }));
  });

  test('instanceof works across copies of the package (Symbol.for brand)', () => {
    const foreign = Object.create(null) as Record<symbol, unknown>;
    Object.defineProperty(foreign, Symbol.for('vaccel.error'), { value: true });
    assert.ok(foreign instanceof VaccelError);
  });
});
