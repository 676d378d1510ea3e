import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { suite, test } from 'node:test';
import { Args, OpType, type Plugin, PluginType, ResourceType, Vaccel, VaccelError } from '@vaccel/core';
import { noopPlugin } from '@vaccel/core/plugins';

const code = (expected: string, pattern?: RegExp) => (error: unknown) => {
  assert.ok(error instanceof VaccelError, String(error));
  assert.equal(error.code, expected, error.message);
  if (pattern) assert.match(error.message, pattern);
  return true;
};

function probe(name: string, options: Partial<Plugin> = {}): Plugin & { calls: string[] } {
  const calls: string[] = [];
  return {
    name,
    version: '1.0.0',
    types: PluginType.Cpu,
    ops: { [OpType.Noop]: () => void calls.push(name) },
    hooks: { sessionRelease: (s) => void calls.push(`release ${s.id}`) },
    calls,
    ...options,
  };
}

suite('sessions', () => {
  test('ids are unique and positive; await using releases', async () => {
    await using vaccel = await Vaccel.open({ plugins: [] });
    const a = await vaccel.createSession();
    let inner: { released: boolean } | undefined;
    {
      await using b = await vaccel.createSession({ hint: PluginType.Gpu });
      inner = b;
      assert.ok(b.id > a.id && a.id > 0);
      assert.equal(b.hint, PluginType.Gpu);
      assert.equal(vaccel.session(b.id), b);
    }
    assert.equal(inner.released, true);
    assert.equal(vaccel.session(a.id), a);
  });

  test('double release is a no-op; use after release is EBADF', async () => {
    await using vaccel = await Vaccel.open({ plugins: ['noop'] });
    const session = await vaccel.createSession();
    await session.release();
    await session.release();
    assert.equal(session.released, true);
    assert.equal(vaccel.session(session.id), undefined);
    await assert.rejects(session.noop(), code('EBADF', new RegExp(`session ${session.id} was released`)));
    assert.throws(() => session.update(PluginType.Cpu), code('EBADF'));
  });

  test('an op no plugin provides is ENOTSUP naming the op and the loaded plugins', async () => {
    await using vaccel = await Vaccel.open({ plugins: ['noop', 'crypto'] });
    await using session = await vaccel.createSession();
    await assert.rejects(
      session.imageClassify(new Uint8Array([1])),
      code('ENOTSUP', /no plugin provides image_classify_topk \(plugins loaded: noop, crypto\)/),
    );
    await assert.rejects(session.doOperation(OpType.TorchSgemm, [], []), code('ENOTSUP', /torch_sgemm/));
  });

  test('an unknown op number is EINVAL; malformed args are EINVAL naming the arg', async () => {
    await using vaccel = await Vaccel.open({ plugins: ['noop'] });
    await using session = await vaccel.createSession();
    await assert.rejects(session.doOperation(999 as OpType, [], []), code('EINVAL', /unknown op 999/));
    await assert.rejects(
      session.doOperation(OpType.Noop, [{ type: 7, buf: new Uint8Array(3) }], []),
      code('EINVAL', /noop read arg 0: Int64 needs 8 bytes, got 3/),
    );
    await assert.rejects(session.doOperation(OpType.Noop, 'x' as never, []), code('EINVAL'));
  });

  test('noop echoes read args into write args', async () => {
    await using vaccel = await Vaccel.open({ plugins: [noopPlugin()] });
    await using session = await vaccel.createSession();
    const out = Args.raw(new Uint8Array(5));
    await session.doOperation(OpType.Noop, [Args.raw(new Uint8Array([1, 2, 3, 4, 5, 6]))], [out]);
    assert.deepEqual([...out.buf], [1, 2, 3, 4, 5]);
  });

  test('dispatch: hint first, then priority, then registration order', async () => {
    const low = probe('low', { types: PluginType.Gpu });
    const high = probe('high', { priority: 5 });
    await using vaccel = await Vaccel.open({ plugins: [low, high] });
    const session = await vaccel.createSession();
    await session.noop();
    session.update(PluginType.Gpu);
    await session.noop();
    session.update(PluginType.Fpga); // nothing matches: falls back to priority
    await session.noop();
    assert.deepEqual([...low.calls, ...high.calls], ['low', 'high', 'high']);
    assert.deepEqual(
      (await vaccel.listOperations()).find((o) => o.op === OpType.Noop),
      {
        op: 0,
        name: 'noop',
        extension: false,
        plugin: 'high',
        plugins: ['high', 'low'],
      },
    );
    await session.release();
    assert.deepEqual(high.calls.at(-1), `release ${session.id}`);
  });

  test('plugins init lazily and once; a failing one is skipped and named', async () => {
    let inits = 0;
    const good = probe('good', { init: () => void inits++ });
    const bad = probe('bad', { priority: 9, init: () => Promise.reject(new Error('no device')) });
    await using vaccel = await Vaccel.open({ plugins: [bad, good], logger: silent });
    assert.equal(inits, 0);
    const session = await vaccel.createSession();
    await session.noop();
    await session.noop();
    assert.equal(inits, 1);
    assert.deepEqual(good.calls, ['good', 'good']);
    await vaccel.unregisterPlugin('good');
    await assert.rejects(session.noop(), (error: VaccelError) => {
      assert.equal(error.code, 'ENOTSUP');
      assert.match(error.message, /failed to initialise: bad/);
      assert.match(String((error.cause as AggregateError).errors[0]), /no device/);
      return true;
    });
  });

  test('registry: same object is idempotent, another with the name is EEXIST, malformed is EINVAL', async () => {
    await using vaccel = await Vaccel.open({ plugins: [] });
    const plugin = probe('p');
    vaccel.registerPlugin(plugin);
    vaccel.registerPlugin(plugin);
    assert.equal(vaccel.plugins().length, 1);
    assert.throws(() => vaccel.registerPlugin(probe('p')), code('EEXIST'));
    assert.throws(
      () => vaccel.registerPlugin({ ...probe('q'), ops: { 0: 'nope' } } as never),
      code('EINVAL', /not a function/),
    );
    assert.throws(() => vaccel.registerPlugin({ ...probe('bad name!') }), code('EINVAL'));
    assert.equal(await vaccel.unregisterPlugin('p'), true);
    assert.equal(await vaccel.unregisterPlugin('p'), false);
  });

  test('an ordinary error from a plugin becomes EPROTO naming plugin and op', async () => {
    await using vaccel = await Vaccel.open({
      plugins: [
        probe('boom', {
          ops: {
            [OpType.Noop]: () => {
              throw new TypeError('kaput');
            },
          },
        }),
      ],
    });
    await using session = await vaccel.createSession();
    await assert.rejects(session.noop(), code('EPROTO', /boom: noop failed: kaput/));
  });

  test('diagnostics channels report op start and end', async () => {
    const seen: string[] = [];
    const onStart = (m: unknown) => seen.push(`start ${(m as { name: string }).name}`);
    const onEnd = (m: unknown) => seen.push(`end ${(m as { plugin: string }).plugin}`);
    channel('vaccel:op:start').subscribe(onStart);
    channel('vaccel:op:end').subscribe(onEnd);
    try {
      await using vaccel = await Vaccel.open({ plugins: ['noop'] });
      await using session = await vaccel.createSession();
      await session.noop();
    } finally {
      channel('vaccel:op:start').unsubscribe(onStart);
      channel('vaccel:op:end').unsubscribe(onEnd);
    }
    assert.deepEqual(seen, ['start noop', 'end noop']);
  });

  test('bad hint and bad options are EINVAL with hints', async () => {
    await using vaccel = await Vaccel.open({ plugins: [] });
    await assert.rejects(vaccel.createSession({ hint: -1 }), code('EINVAL'));
    await assert.rejects(Vaccel.open({ backends: [] } as never), code('EINVAL', /use plugins instead/));
    await assert.rejects(
      Vaccel.open({ env: { VACCEL_LOG_LEVEL: 'loud' } }),
      code('EINVAL', /VACCEL_LOG_LEVEL/),
    );
    await assert.rejects(Vaccel.open({ plugins: ['./does-not-exist.js'] }), code('ENOENT', /does-not-exist/));
  });

  test('closing the runtime releases sessions and makes it unusable', async () => {
    const vaccel = await Vaccel.open({ plugins: ['noop'] });
    const session = await vaccel.createSession();
    await vaccel.close();
    await vaccel.close();
    assert.equal(session.released, true);
    await assert.rejects(vaccel.createSession(), code('EBADF'));
  });
});

suite('resources', () => {
  const blob = (text: string) => ({ name: 'model.bin', data: new TextEncoder().encode(text) });

  test('equal content is deduplicated by sha256; freed when the last holder lets go', async () => {
    const freed: number[] = [];
    const watcher = probe('watch', { hooks: { resourceRelease: (r) => void freed.push(r.id) } });
    await using vaccel = await Vaccel.open({ plugins: [watcher] });
    const a = await vaccel.createResource({ type: ResourceType.Model, blobs: [blob('weights')] });
    const b = await vaccel.createResource({ type: ResourceType.Model, blobs: [blob('weights')] });
    const other = await vaccel.createResource({ type: ResourceType.Data, blobs: [blob('weights')] });
    assert.equal(a.id, b.id);
    assert.equal(a.digest, b.digest);
    assert.match(a.digest, /^[0-9a-f]{64}$/);
    assert.notEqual(other.id, a.id, 'the type is part of the identity');
    const session = await vaccel.createSession();
    session.registerResource(a);
    session.registerResource(a);
    await a.release();
    await a.release();
    await b.release();
    assert.ok(vaccel.resource(a.id), 'still registered with a session');
    assert.deepEqual(freed, []);
    await session.release();
    assert.equal(vaccel.resource(a.id), undefined);
    assert.deepEqual(freed, [a.id]);
    const later = await vaccel.createSession();
    assert.throws(() => later.registerResource(a), code('EINVAL', /was freed/));
  });

  test('ops see only resources registered with their session', async () => {
    let seen = '';
    const reader = probe('reader', {
      ops: {
        [OpType.Noop]: (_args, ctx) => {
          seen = new TextDecoder().decode(ctx.resource(1).blob('model.bin').data);
        },
      },
    });
    await using vaccel = await Vaccel.open({ plugins: [reader] });
    await using resource = await vaccel.createResource({ type: ResourceType.Model, blobs: [blob('abc')] });
    const session = await vaccel.createSession();
    await assert.rejects(session.noop(), code('ENOENT', /resource 1 is not registered with session/));
    session.registerResource(resource);
    await session.noop();
    assert.equal(seen, 'abc');
    session.unregisterResource(resource);
    assert.throws(() => session.unregisterResource(resource), code('ENOENT'));
    await assert.rejects(session.modelLoad(resource), code('ENOENT'));
  });

  test('from paths: files and directories; errors are clear', async () => {
    await using vaccel = await Vaccel.open({ plugins: [] });
    const dir = new URL('./fixtures', import.meta.url).pathname;
    const r = await vaccel.createResource({ type: ResourceType.Lib, paths: dir });
    assert.deepEqual(
      r.blobs.map((b) => b.name),
      ['exec-functions.mjs', 'not-allowed.mjs'],
    );
    assert.ok(r.size > 0);
    assert.throws(() => r.blob('nope'), code('ENOENT'));
    await assert.rejects(
      vaccel.createResource({ type: ResourceType.Lib, paths: '/nonexistent/x' }),
      code('ENOENT'),
    );
    await assert.rejects(vaccel.createResource({ type: ResourceType.Lib }), code('EINVAL'));
    await assert.rejects(vaccel.createResource({ type: 7 as never, blobs: [blob('x')] }), code('EINVAL'));
  });
});

const silent = { error() {}, warn() {}, info() {}, debug() {}, child: () => silent };
