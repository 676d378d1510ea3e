/**
 * docs/adding-a-transport.md, followed by a test: every address kind has a case here (a new kind
 * fails the first test until it gets one), and each case walks the path — the address parses to
 * its kind and formats back (step 1), a bad one is EINVAL listing every form, and a ttRPC call
 * crosses the pipe from `listen()` to `connect()` (steps 2–3) where this machine can make one;
 * where it cannot (vsock needs a VM, virtio-serial a VM's port), connecting fails with a clear
 * error and the test that makes the call in a VM is named.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isVaccelError } from '@vaccel/core';
import { vsockUnavailable } from '@vaccel/memory';
import { ADDRESS_FORMS, type Address, connect, formatAddress, listen, parseAddress } from '@vaccel/protocol';
import { Client, Server } from '@vaccel/ttrpc';

const dir = mkdtempSync(join(tmpdir(), 'vaccel-transports-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A self-signed certificate for 127.0.0.1, made with openssl (in Debian's base). */
function certificate(): { cert: string; key: string } {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1']
      .concat(['-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=127.0.0.1'])
      .concat(['-addext', 'subjectAltName=IP:127.0.0.1']),
    { cwd: dir, stdio: 'pipe' },
  );
  return {
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
  };
}

/**
 * Firecracker's side of hybrid vsock, minimal: on `<uds>`, read `CONNECT <port>\n`, answer
 * `OK <n>\n`, then splice the stream to `<uds>_<port>` (where the agent listens).
 */
function hybridVsockHost(uds: string): Promise<NetServer> {
  const server = createServer((socket) => {
    socket.once('data', (head) => {
      const port = /^CONNECT (\d+)\n$/.exec(head.toString())?.[1];
      if (!port) return void socket.destroy();
      const agent = netConnect(`${uds}_${port}`, () => {
        socket.write('OK 1\n');
        socket.pipe(agent).pipe(socket);
      });
      agent.on('error', () => socket.destroy());
      socket.on('error', () => agent.destroy());
    });
  });
  return new Promise((resolve) => server.listen(uds, () => resolve(server)));
}

/** Serves an echo method on `listenAt`, calls it through `connectTo`, closes both. */
async function echoCall(
  listenAt: string,
  connectTo: string,
  tls?: { cert: string; key: string },
): Promise<string> {
  const server = new Server();
  server.register('test.Echo', { Echo: (payload) => payload });
  const listener = await listen(listenAt, tls ? { tls } : {});
  server.listen(listener);
  try {
    const client = new Client(await connect(connectTo, tls ? { tls: { ca: tls.cert } } : {}));
    try {
      return Buffer.from(await client.call('test.Echo', 'Echo', Buffer.from(`over ${connectTo}`))).toString();
    } finally {
      client.close();
    }
  } finally {
    server.close();
    await new Promise((resolve) => listener.close(resolve));
  }
}

interface Case {
  /** Addresses of this kind and the string each formats back to. */
  addresses: [string, string][];
  /** A ttRPC call over the transport on this machine, or why there is none and where it is made. */
  call: () => Promise<{ echoed: string; expected: string } | { refused: unknown; coveredBy: string }>;
}

const vm = (name: string) => fileURLToPath(new URL(`../../vm/test/${name}`, import.meta.url));

const CASES: Record<Address['kind'], Case> = {
  unix: {
    addresses: [
      ['unix:///run/vaccel.sock', 'unix:///run/vaccel.sock'],
      ['unix://@vaccel', 'unix://@vaccel'],
    ],
    call: async () => {
      const path = `unix://${join(dir, 'u.sock')}`;
      const abstract = `unix://@vaccel-transports-${process.pid}`;
      const echoed = (await echoCall(path, path)) + (await echoCall(abstract, abstract));
      return { echoed, expected: `over ${path}over ${abstract}` };
    },
  },
  tcp: {
    addresses: [
      ['tcp://127.0.0.1:65500', 'tcp://127.0.0.1:65500'],
      ['tcp://[::1]:8888', 'tcp://[::1]:8888'],
    ],
    call: async () => {
      const address = `tcp://127.0.0.1:${await freePort()}`;
      return { echoed: await echoCall(address, address), expected: `over ${address}` };
    },
  },
  tls: {
    addresses: [['tls://localhost:8443', 'tls://localhost:8443']],
    call: async () => {
      const address = `tls://127.0.0.1:${await freePort()}`;
      return { echoed: await echoCall(address, address, certificate()), expected: `over ${address}` };
    },
  },
  vsock: {
    addresses: [
      ['vsock://2:2048', 'vsock://2:2048'],
      ['vsock://any:1024', 'vsock://-1:1024'],
    ],
    call: async () => {
      // A guest reaches its host at CID 2; this machine is no guest (and may have no vsock at all:
      // then the error says why, as vsockUnavailable() does), so nothing answers there.
      const refused = await connect('vsock://2:2048').catch((e: unknown) => e);
      const why = vsockUnavailable();
      if (why && isVaccelError(refused)) assert.ok(refused.message.includes(why), refused.message);
      return { refused, coveredBy: vm('vsock.test.ts') };
    },
  },
  hvsock: {
    addresses: [['hvsock:///run/fc/v.sock:2048', 'hvsock:///run/fc/v.sock:2048']],
    call: async () => {
      const uds = join(dir, 'v.sock');
      const vmm = await hybridVsockHost(uds);
      try {
        const echoed = await echoCall(`unix://${uds}_2048`, `hvsock://${uds}:2048`);
        return { echoed, expected: `over hvsock://${uds}:2048` };
      } finally {
        vmm.close();
      }
    },
  },
  serial: {
    addresses: [
      ['virtio-serial:///dev/virtio-ports/vaccel', 'virtio-serial:///dev/virtio-ports/vaccel'],
      ['serial:///dev/virtio-ports/vaccel', 'virtio-serial:///dev/virtio-ports/vaccel'],
    ],
    call: async () => ({
      refused: await connect(`virtio-serial://${join(dir, 'no-such-port')}`).catch((e: unknown) => e),
      coveredBy: vm('e2e.test.ts'),
    }),
  },
};

describe('adding a transport: every address kind walks the path', () => {
  before(() => assert.ok(existsSync(dir)));

  it('has a case for every kind of address', () =>
    assert.deepEqual(Object.keys(CASES).sort(), Object.keys(ADDRESS_FORMS).sort()));

  for (const [kind, { addresses, call }] of Object.entries(CASES)) {
    it(`${kind}: parses, formats back, and carries a ttRPC call (or says why not here)`, async () => {
      for (const [text, canonical] of addresses) {
        assert.equal(parseAddress(text).kind, kind, text);
        assert.equal(formatAddress(parseAddress(text)), canonical, text);
      }
      const bad = `${addresses[0]![0].split('://')[0]}://`;
      assert.throws(
        () => parseAddress(bad),
        (e: unknown) =>
          isVaccelError(e) &&
          e.code === 'EINVAL' &&
          Object.values(ADDRESS_FORMS).every((forms) => forms.every((form) => e.message.includes(form))),
        bad,
      );
      const outcome = await call();
      if ('echoed' in outcome) assert.equal(outcome.echoed, outcome.expected);
      else {
        assert.ok(isVaccelError(outcome.refused), String(outcome.refused));
        assert.match(
          outcome.refused.code,
          /^(ENOTSUP|ENOENT|ECONNRESET|ETIMEDOUT)$/,
          outcome.refused.message,
        );
        assert.ok(existsSync(outcome.coveredBy), `${outcome.coveredBy} makes the call in a VM`);
      }
    });
  }
});
