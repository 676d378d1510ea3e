import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { Client, Code, Server, type ServerInterceptor, TtrpcError } from '@vaccel/ttrpc';
import { bytes, duplexPair, text } from './helpers.js';

/** Per-connection state the interceptors see typed. */
interface Tenant {
  name: string;
  calls: number;
}

suite('ttrpc server interceptors', () => {
  test('run around every call, first outermost, with the typed connection context', async () => {
    const seen: string[] = [];
    const outer: ServerInterceptor<Tenant> = async (ctx, next, request) => {
      ctx.connection.context.calls++;
      seen.push(`outer>${ctx.method}:${request ? text(request) : 'stream'}`);
      const reply = await next();
      seen.push(`outer<${ctx.connection.context.name}`);
      return reply;
    };
    const guard: ServerInterceptor<Tenant> = (ctx, next) => {
      seen.push(`guard>${ctx.method}`);
      if (ctx.metadata.get('token') !== 'ok')
        return Promise.reject(new TtrpcError(Code.PERMISSION_DENIED, 'no'));
      return next();
    };
    const server = new Server<Tenant>({
      interceptors: [outer, guard],
      onConnection: (connection) => {
        connection.context = { name: 'tenant-a', calls: 0 };
      },
    });
    server.register('test.Echo', {
      Echo: (payload) => {
        seen.push('handler');
        return payload;
      },
      Sum: {
        kind: 'client-stream',
        async handler(payloads) {
          let sum = 0;
          for await (const payload of payloads) sum += Number(text(payload));
          return bytes(String(sum));
        },
      },
    });
    const [a, b] = duplexPair();
    const connection = server.serve(b);
    const client = new Client(a, { metadata: { token: 'ok' } });
    assert.equal(text(await client.call('test.Echo', 'Echo', bytes('hi'))), 'hi');
    assert.deepEqual(seen, ['outer>Echo:hi', 'guard>Echo', 'handler', 'outer<tenant-a']);
    assert.equal(text(await client.callStream('test.Echo', 'Sum', ['2', '3'].map(bytes))), '5');
    assert.equal(seen.at(-3), 'outer>Sum:stream');
    // An interceptor's refusal is the call's status; the handler never runs.
    seen.length = 0;
    const [c, d] = duplexPair();
    server.serve(d);
    const stranger = new Client(c);
    await assert.rejects(
      stranger.call('test.Echo', 'Echo', bytes('x')),
      (e: unknown) => e instanceof TtrpcError && e.code === Code.PERMISSION_DENIED,
    );
    assert.deepEqual(seen, ['outer>Echo:x', 'guard>Echo']);
    assert.equal(connection.context.calls, 2);
    await client.close();
    await stranger.close();
  });
});
