/**
 * TLS on the agent and the RPC plugin, with certificates made by openssl here: server TLS, mutual
 * TLS, the token over TLS, clear errors for untrusted certificates, plain TCP refused off loopback,
 * and the health probes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { connect } from '@vaccel/protocol';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { makeCertificates } from '../../bench/src/certificates.js';
import { freePort, type RunningAgent, startAgent, tempDir } from './helpers.js';

const dir = tempDir();
const file = (name: string) => join(dir, name);
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = hasOpenssl
  ? false
  : 'openssl is not installed (apt-get install openssl): the TLS tests need it to make certificates';

const tlsEnv = (extra: Record<string, string> = {}) => ({ VACCEL_RPC_TLS_CA: file('ca.pem'), ...extra });
const tlsArgs = [
  '--tls-cert',
  file('server.pem'),
  '--tls-key',
  file('server.key'),
  '--plugins',
  'noop:sgemm-js',
];

async function noop(address: string, env: Record<string, string>, token?: string): Promise<void> {
  await using vaccel = await Vaccel.open({
    plugins: [remotePlugin({ address, env, ...(token ? { token } : {}) })],
  });
  await using session = await vaccel.createSession();
  await session.noop();
  const c = await session.sgemm({
    m: 2,
    n: 2,
    k: 2,
    a: new Float32Array([1, 2, 3, 4]),
    b: new Float32Array([5, 6, 7, 8]),
  });
  assert.deepEqual([...c], [19, 22, 43, 50]);
}

suite('TLS', { skip }, () => {
  before(() => makeCertificates(dir, { client: true, otherCa: true }));

  test('server TLS with a token: calls work; an untrusted certificate or a wrong token is EACCES', async () => {
    const port = await freePort();
    writeFileSync(file('token'), 's3cret\n');
    const agent = await startAgent([
      '-a',
      `tls://127.0.0.1:${port}`,
      ...tlsArgs,
      '--token-file',
      file('token'),
    ]);
    try {
      const address = `tls://127.0.0.1:${port}`;
      await noop(address, tlsEnv(), 's3cret');
      await noop(`tls://localhost:${port}`, tlsEnv(), 's3cret'); // the name is in the certificate too
      await assert.rejects(noop(address, tlsEnv(), 'guess'), { code: 'EACCES', message: /token/ });
      await assert.rejects(noop(address, { VACCEL_RPC_TLS_CA: file('other-ca.pem') }, 's3cret'), {
        code: 'EACCES',
        message: /TLS with the agent at tls:\/\/127\.0\.0\.1:\d+ failed: .*VACCEL_RPC_TLS_CA/,
      });
      await assert.rejects(noop(address, { VACCEL_RPC_TLS_CA: file('missing.pem') }, 's3cret'), {
        code: 'ENOENT',
        message: /VACCEL_RPC_TLS_CA: cannot read/,
      });
      // Plain TCP to a TLS port does not get through.
      await assert.rejects(noop(`tcp://127.0.0.1:${port}`, {}, 's3cret'));
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });

  test('mutual TLS: a client without a certificate signed by --tls-ca is refused', async () => {
    const port = await freePort();
    const agent = await startAgent(['-a', `tcp://127.0.0.1:${port}`, ...tlsArgs, '--tls-ca', file('ca.pem')]);
    try {
      const address = `tls://127.0.0.1:${port}`;
      await noop(
        address,
        tlsEnv({ VACCEL_RPC_TLS_CERT: file('client.pem'), VACCEL_RPC_TLS_KEY: file('client.key') }),
      );
      await assert.rejects(noop(address, tlsEnv()), (e: Error & { code?: string }) =>
        ['EACCES', 'ECONNRESET'].includes(e.code ?? ''),
      );
      await assert.rejects(noop(address, tlsEnv({ VACCEL_RPC_TLS_CERT: file('client.pem') })), {
        code: 'EINVAL',
        message: /VACCEL_RPC_TLS_CERT and VACCEL_RPC_TLS_KEY go together/,
      });
    } finally {
      assert.equal(await agent.stop(), 0);
    }
  });
});

suite('plain TCP and probes', () => {
  const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
  let agent: RunningAgent;
  let metricsPort: number;
  let unix: string;
  before(async () => {
    metricsPort = await freePort();
    unix = `unix://${join(tempDir(), 'agent.sock')}`;
    agent = await startAgent(['-a', unix, '--plugins', 'noop', '--metrics', `127.0.0.1:${metricsPort}`]);
  });
  after(async () => assert.equal(await agent.stop(), 0));

  test('plain tcp:// off loopback is refused without --insecure, with a clear message', async () => {
    const port = await freePort();
    const refused = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@vaccel/source',
        bin,
        '-a',
        `tcp://0.0.0.0:${port}`,
        '--plugins',
        'noop',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.notEqual(refused.status, 0);
    assert.match(
      refused.stdout + refused.stderr,
      /refusing plain TCP on tcp:\/\/0\.0\.0\.0:\d+: .*--insecure/,
    );
    const insecure = await startAgent(['-a', `tcp://0.0.0.0:${port}`, '--insecure', '--plugins', 'noop']);
    try {
      await using vaccel = await Vaccel.open({
        plugins: [remotePlugin({ address: `tcp://127.0.0.1:${port}` })],
      });
      await using session = await vaccel.createSession();
      await session.noop();
    } finally {
      assert.equal(await insecure.stop(), 0);
    }
  });

  test('/healthz, /readyz and grpc.health.v1.Health/Check answer without the token', async () => {
    const get = async (path: string) => {
      const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
      return [response.status, await response.text()] as const;
    };
    assert.deepEqual(await get('/healthz'), [200, 'ok\n']);
    assert.deepEqual(await get('/readyz'), [200, 'ready\n']);
    assert.equal((await get('/nowhere'))[0], 404);
    const client = new Client(await connect(unix));
    try {
      const reply = await client.call('grpc.health.v1.Health', 'Check', new Uint8Array());
      assert.deepEqual([...reply], [0x08, 1]); // SERVING
    } finally {
      await client.close();
    }
  });
});
