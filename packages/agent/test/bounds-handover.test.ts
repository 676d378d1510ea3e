/**
 * The agent bounds shared-memory handover (issue 22): a flood of handover connections from one
 * process is refused per process, and another tenant still attaches its region. The test waits
 * for the agent's own log lines, never for time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { native, nativeAvailable } from '@vaccel/memory';
import { SharedMemoryService, serviceClient } from '@vaccel/protocol/service';
import { Client } from '@vaccel/ttrpc';
import { startAgent, tempDir } from './helpers.js';

suite('agent bounds', () => {
  test('a handover flood from one process does not block another tenant’s Attach', {
    skip: !nativeAvailable(),
  }, async () => {
    const path = join(tempDir(), 'ho.sock');
    const agent = await startAgent(['-a', `unix://${path}`]);
    let flood: ReturnType<typeof spawn> | undefined;
    try {
      const handoverPath = String(agent.logs.find((l) => l.msg === 'listening')?.handover);
      assert.ok(handoverPath.endsWith('.shm'));
      // Another process opens 300 handover connections, one after another, and sends nothing.
      flood = spawn(
        process.execPath,
        [
          '-e',
          `const net = require('node:net'); const held = []; let n = 0;
           const next = () => { if (n++ === 300) { process.stdout.write(held.length + '\\n'); return; }
             const s = net.connect(process.argv[1]); s.on('error', () => {}); held.push(s);
             s.once('connect', next); s.once('error', next); };
           next(); setInterval(() => {}, 1e6);`,
          handoverPath,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const connected = await new Promise<number>((resolve) =>
        flood!.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
      );
      assert.ok(connected > 200, `flood connected ${connected}`);
      // All but 4 (the per-process cap) are refused, each logged with the peer.
      await agent.until(
        (logs) => logs.filter((l) => l.reason === 'handover_peer').length === connected - 4,
        'the flood is refused',
      );
      assert.equal(agent.logs.find((l) => l.reason === 'handover_peer')?.pid, flood.pid);
      // Another tenant (this process) attaches a region meanwhile.
      const socket = netConnect(path);
      await new Promise((resolve) => socket.once('connect', resolve));
      const client = new Client(socket);
      const memory = serviceClient(client, SharedMemoryService);
      const lib = native();
      const fd = lib.memfd('bounds-test', 4096, true);
      const offer = await memory.offer({});
      const handover = lib.connect(offer.handoverPath);
      lib.sendmsg(handover, offer.nonce, [fd]);
      lib.close(handover);
      lib.close(fd);
      const { regionId } = await memory.attach({ nonce: offer.nonce });
      assert.ok(regionId > 0);
      await client.close();
    } finally {
      flood?.kill('SIGKILL');
      await agent.kill();
    }
  });
});
