import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogLevel, logLevelName, parseLogLevel } from '@vaccel/core';

describe('log levels', () => {
  it('parse from names or upstream numbers, and name back', () => {
    for (const [text, level] of [
      ['error', LogLevel.Error],
      ['WARN', LogLevel.Warn],
      ['3', LogLevel.Info],
      ['debug', LogLevel.Debug],
    ] as const) {
      assert.equal(parseLogLevel(text), level);
    }
    assert.deepEqual([LogLevel.Error, LogLevel.Warn, LogLevel.Info, LogLevel.Debug].map(logLevelName), [
      'error',
      'warn',
      'info',
      'debug',
    ]);
    for (const bad of ['', 'verbose', '0', '5', undefined]) assert.equal(parseLogLevel(bad), undefined);
  });
});
