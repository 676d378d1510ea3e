import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '@vaccel/process';
import {
  aesCbcRequestHeader,
  CryptoBackend,
  Direction,
  LoopbackFrontend,
  Status,
  vaccelEngine,
} from '@vaccel/vhost-user';
import pino from 'pino';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

/** Encrypts one request through a loopback front-end; the ciphertext and the status. */
async function encryptThrough(socket: string, key: Uint8Array, iv: Uint8Array, data: Uint8Array) {
  const frontend = new LoopbackFrontend(socket);
  try {
    await frontend.setup();
    const session = await frontend.createSession(key, Direction.ENCRYPT);
    const header = aesCbcRequestHeader(session, data.byteLength);
    const { out } = frontend.submit([header, iv, data], [data.byteLength, 1]);
    await frontend.completions(1);
    return {
      output: Buffer.from(frontend.read(out[0]!, data.byteLength)),
      status: frontend.read(out[1]!, 1)[0],
    };
  } finally {
    frontend.close();
  }
}

const expected = (key: Uint8Array, iv: Uint8Array, data: Uint8Array) => {
  const cipher = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
};

describe('vaccel-crypto-backend', () => {
  it('serves as a daemon, and SIGTERM closes it and removes its socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-crypto-cli-'));
    const socket = join(dir, 'crypto.sock');
    const child = spawnTied(
      process.execPath,
      ['--import', 'tsx', '--conditions=@vaccel/source', bin, '--socket', socket],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    try {
      let logs = '';
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (chunk) => {
          logs += chunk;
          if (logs.includes('listening')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}: ${logs}`)));
      });
      const key = randomBytes(32);
      const iv = randomBytes(16);
      const data = randomBytes(256);
      const { output, status } = await encryptThrough(socket, key, iv, data);
      assert.equal(status, Status.OK);
      assert.deepEqual(output, expected(key, iv, data));
      child.kill('SIGTERM');
      const code = await new Promise((resolve) => child.once('exit', resolve));
      assert.equal(code, 0);
      assert.ok(!existsSync(socket), 'the socket is removed');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad options with a clear message and exit code 2', async () => {
    for (const [args, message] of [
      [[], /--socket PATH is required/],
      [['--socket', '/tmp/x', '--engine', 'gpu'], /--engine must be openssl or vaccel/],
      [['--socket', '/tmp/x', '--rpc-address', 'unix:///x'], /--rpc-address needs --engine vaccel/],
      [['--socket', '/tmp/x', '--max-connections', '0'], /--max-connections must be a positive integer/],
    ] as const) {
      const child = spawnTied(
        process.execPath,
        ['--import', 'tsx', '--conditions=@vaccel/source', bin, ...args],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr!.on('data', (chunk) => {
        stderr += chunk;
      });
      const code = await new Promise((resolve) => child.once('exit', resolve));
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
    }
  });
});

describe('the vaccel engine', () => {
  it('runs guest requests through a vAccel session (any plugin with AES)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-crypto-engine-'));
    const engine = await vaccelEngine();
    const backend = await CryptoBackend.listen({
      socket: join(dir, 's'),
      engine,
      logger: pino({ level: 'silent' }),
    });
    try {
      assert.ok(!engine.supports('aes-128-ecb') && engine.supports('aes-256-cbc'));
      const key = randomBytes(32);
      const iv = randomBytes(16);
      const data = randomBytes(4096);
      const { output, status } = await encryptThrough(backend.socket, key, iv, data);
      assert.equal(status, Status.OK);
      assert.deepEqual(output, expected(key, iv, data));
      assert.equal(backend.stats().engine, 'vaccel');
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
