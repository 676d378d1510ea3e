import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Args, type Session, Vaccel, VaccelError } from '@vaccel/core';
import { execPlugin } from '@vaccel/core/plugins';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const allowed = fixture('exec-functions.mjs');

async function withSession(allow: string[], fn: (session: Session) => Promise<void>): Promise<void> {
  await using vaccel = await Vaccel.open({ plugins: [execPlugin({ allow })] });
  await using session = await vaccel.createSession();
  await fn(session);
}

const rejectsWith = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof VaccelError && error.code === code && pattern.test(error.message);

suite('exec plugin', () => {
  test('runs an allowlisted function with raw args', async () => {
    await withSession([allowed], async (session) => {
      const out = Args.int32(0);
      await session.exec(allowed, 'sum', [Args.int32(40), Args.int32(2)], [out]);
      assert.equal(new DataView(out.buf.buffer).getInt32(0, true), 42);
    });
  });

  test('anything not on the allowlist is EPERM', async () => {
    await withSession([`${allowed}#sum`], async (session) => {
      await assert.rejects(
        session.exec(fixture('not-allowed.mjs'), 'sum', [], [Args.int32(0)]),
        rejectsWith('EPERM', /not on the exec allowlist/),
      );
      await assert.rejects(session.exec(allowed, 'fail', [], []), rejectsWith('EPERM', /fail is not on/));
      await assert.rejects(
        session.exec('node:child_process', 'execSync', [Args.string('id')], []),
        rejectsWith('EPERM', /execSync/),
      );
      const sneaky = `${fixture('')}/../fixtures/../fixtures/not-allowed.mjs`;
      await assert.rejects(
        session.exec(sneaky, 'sum', [], []),
        rejectsWith('EPERM', /not on the exec allowlist/),
      );
    });
    await withSession([], async (session) => {
      await assert.rejects(session.exec(allowed, 'sum', [], []), rejectsWith('EPERM', /allowlist/));
    });
  });

  test('equivalent paths to an allowed module are allowed (canonicalised)', async () => {
    await withSession([allowed], async (session) => {
      const out = Args.int32(0);
      await session.exec(`${fixture('')}/../fixtures/exec-functions.mjs`, 'sum', [Args.int32(1)], [out]);
      assert.equal(new DataView(out.buf.buffer).getInt32(0, true), 1);
    });
  });

  test('missing exports are ENOENT; a throwing function is EPROTO; the plugin keeps working', async () => {
    await withSession([allowed], async (session) => {
      await assert.rejects(
        session.exec(allowed, 'nope', [], []),
        rejectsWith('ENOENT', /exports no function nope/),
      );
      await assert.rejects(
        session.exec(allowed, 'notAFunction', [], []),
        rejectsWith('ENOENT', /notAFunction/),
      );
      await assert.rejects(
        session.exec(allowed, 'fail', [], []),
        rejectsWith('EPROTO', /user function failed/),
      );
      await assert.rejects(session.exec(allowed, 'toString', [], []), rejectsWith('ENOENT', /toString/));
      const out = Args.int32(0);
      await session.exec(allowed, 'sum', [Args.int32(7)], [out]);
      assert.equal(new DataView(out.buf.buffer).getInt32(0, true), 7);
    });
  });

  test('the allowlist comes from VACCEL_EXEC_ALLOWLIST by default', async () => {
    await using vaccel = await Vaccel.open({
      plugins: ['exec'],
      env: { VACCEL_EXEC_ALLOWLIST: `/elsewhere.mjs:${allowed}#sum` },
    });
    await using session = await vaccel.createSession();
    const out = Args.int32(0);
    await session.exec(allowed, 'sum', [Args.int32(5)], [out]);
    assert.equal(new DataView(out.buf.buffer).getInt32(0, true), 5);
    await assert.rejects(session.exec(allowed, 'fail', [], []), rejectsWith('EPERM', /allowlist/));
  });
});
