import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { native } from '@vaccel/memory';

describe('native addon', () => {
  const lib = native();

  /**
   * The next connection on a listening socket. The addon's accept does not wait: a watcher says
   * when the listening socket is readable, i.e. a connection is waiting.
   */
  function acceptOne(server: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const watcher = new lib.Watcher(server, (error) => {
        if (error) {
          watcher.close();
          reject(new Error(error));
          return;
        }
        const accepted = lib.accept(server);
        if (accepted === null) return; // not yet: wait for the next wakeup
        watcher.close();
        resolve(accepted);
      });
    });
  }

  it('passes descriptors over a unix socket, and the memory behind them is shared', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-native-'));
    const server = lib.listen(join(dir, 's'));
    const client = lib.connect(join(dir, 's'));
    try {
      const accepted = await acceptOne(server);
      const memfd = lib.memfd('shared', 8192);
      const mine = new Uint8Array(lib.mmap(memfd, 8192, 0));
      assert.equal(lib.sendmsg(client, Uint8Array.of(1, 2, 3), [memfd]), 3);
      const received = await new Promise<{ bytes: number; fds: number[] }>((resolve) => {
        const watcher = new lib.Watcher(accepted, () => {
          const got = lib.recvmsg(accepted, new Uint8Array(16));
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
      assert.equal(lib.recvmsg(accepted, new Uint8Array(4)), null, 'nothing more waiting');
      for (const fd of [memfd, received.fds[0]!, accepted]) lib.close(fd);
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

  it('munmap detaches the buffer and unmaps it at once, exactly once', () => {
    const fd = lib.memfd('unmap-me', 1 << 20, true);
    const buffer = lib.mmap(fd, 1 << 20, 0);
    const view = new Float32Array(buffer);
    view[7] = 1.5;
    const mapped = () => readFileSync('/proc/self/maps', 'utf8').includes('/memfd:unmap-me');
    assert.ok(mapped(), 'the mapping shows in /proc/self/maps');
    assert.equal(lib.munmap(buffer), true);
    assert.equal(buffer.byteLength, 0, 'detached');
    assert.equal(view.length, 0, 'its views are empty: nothing can touch the memory any more');
    assert.equal(view[7], undefined);
    assert.ok(!mapped(), 'gone from /proc/self/maps');
    assert.equal(lib.munmap(buffer), false, 'a second munmap does nothing');
    assert.equal(lib.munmap(new ArrayBuffer(8)), false, 'not a mapping of ours');
    assert.throws(() => lib.munmap('x' as never), TypeError);
    lib.close(fd);
  });

  it('seals memfds against resizing, and says which descriptors are sealed', () => {
    const sealed = lib.memfd('sealed', 8192, true);
    const open = lib.memfd('open', 8192);
    assert.equal(lib.sizeSealed(sealed), true);
    assert.equal(lib.sizeSealed(open), false);
    assert.throws(() => ftruncateSync(sealed, 0), { code: 'EPERM' }, 'a sealed memfd cannot shrink');
    assert.throws(() => ftruncateSync(sealed, 16384), { code: 'EPERM' }, 'nor grow');
    ftruncateSync(open, 0); // an unsealed one can: whoever maps it could then fault (SIGBUS)
    const file = openSync('/proc/self/cmdline', 'r');
    assert.equal(lib.sizeSealed(file), false, 'a file that is no memfd');
    closeSync(file);
    assert.throws(() => lib.sizeSealed(987654), { code: 'EBADF' });
    lib.close(sealed);
    lib.close(open);
  });

  it('tells who is at the other end of a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-native-'));
    const server = lib.listen(join(dir, 's'));
    const client = lib.connect(join(dir, 's'));
    try {
      const accepted = await acceptOne(server);
      assert.deepEqual(lib.peerCredentials(accepted), {
        pid: process.pid,
        uid: process.getuid!(),
        gid: process.getgid!(),
      });
      lib.close(accepted);
      const memfd = lib.memfd('not-a-socket', 4096);
      assert.throws(() => lib.peerCredentials(memfd), { code: 'ENOTSOCK' });
      lib.close(memfd);
    } finally {
      lib.close(client);
      lib.close(server);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
