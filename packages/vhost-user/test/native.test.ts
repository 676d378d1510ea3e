import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { native } from './helpers.js';

describe('native addon', () => {
  const lib = native();

  it('passes descriptors over a unix socket, and the memory behind them is shared', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-native-'));
    const server = lib.listen(join(dir, 's'));
    const client = lib.connect(join(dir, 's'));
    try {
      let accepted: number | null = null;
      for (let i = 0; i < 100 && accepted === null; i++) {
        accepted = lib.accept(server);
        if (accepted === null) await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(accepted !== null);
      const memfd = lib.memfd('shared', 8192);
      const mine = new Uint8Array(lib.mmap(memfd, 8192, 0));
      assert.equal(lib.sendmsg(client, Uint8Array.of(1, 2, 3), [memfd]), 3);
      const received = await new Promise<{ bytes: number; fds: number[] }>((resolve) => {
        const watcher = new lib.Watcher(accepted!, () => {
          const got = lib.recvmsg(accepted!, new Uint8Array(16));
          if (got) {
            watcher.close();
            watcher.close(); // closing twice is harmless
            resolve(got);
          }
        });
      });
      assert.equal(received.bytes, 3);
      assert.equal(received.fds.length, 1);
      const theirs = new Uint8Array(lib.mmap(received.fds[0]!, 4096, 4096));
      mine[4096 + 10] = 77;
      assert.equal(theirs[10], 77);
      assert.equal(lib.recvmsg(accepted!, new Uint8Array(4)), null, 'nothing more waiting');
      for (const fd of [memfd, received.fds[0]!, accepted!]) lib.close(fd);
    } finally {
      lib.close(client);
      lib.close(server);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts eventfd writes and reads them back once', () => {
    const fd = lib.eventfd(0);
    assert.equal(lib.eventfdRead(fd), null);
    lib.eventfdWrite(fd, 2);
    lib.eventfdWrite(fd);
    assert.equal(lib.eventfdRead(fd), 3);
    assert.equal(lib.eventfdRead(fd), null);
    lib.close(fd);
  });

  it('throws errors with errno codes, never crashes on bad arguments', () => {
    assert.throws(() => lib.close(987654), { code: 'EBADF' });
    assert.throws(() => lib.mmap(987654, 4096, 0), { code: 'EBADF' });
    assert.throws(() => lib.mmap(0, 4096, 100), { code: 'EINVAL' });
    const small = lib.memfd('small', 4096);
    assert.throws(() => lib.mmap(small, 8192, 0), { code: 'EINVAL' }, 'past the end of the file');
    assert.throws(() => lib.mmap(small, 4096, 4096), { code: 'EINVAL' });
    lib.close(small);
    assert.throws(() => lib.connect('/nonexistent/socket'), { code: 'ENOENT' });
    assert.throws(() => lib.connect('x'.repeat(200)), TypeError);
    assert.throws(() => lib.recvmsg(0, 'nope' as never), TypeError);
    assert.throws(() => new lib.Watcher(-1, () => {}));
  });
});
