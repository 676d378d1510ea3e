#!/usr/bin/env node
// Builds the native addon with node-gyp on install, against this node's own headers when they are
// installed beside it (so nothing is downloaded). A failed build warns instead of failing
// `npm ci`: without the addon guests and the agent move data in-band (as upstream does) and say
// so, and vaccel-crypto-backend says how to rebuild.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

if (process.platform !== 'linux') {
  console.warn(
    '@vaccel/memory: shared memory needs Linux; skipping the native build (everything works in-band)',
  );
  process.exit(0);
}
const args = ['rebuild'];
const prefix = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')))
  args.push(`--nodedir=${prefix}`);
// npm names its bundled node-gyp in npm_config_node_gyp while it runs lifecycle scripts.
const gyp = process.env.npm_config_node_gyp;
const result = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' })
  : spawnSync('node-gyp', args, { stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    '@vaccel/memory: the native addon did not build (needs python3, make, g++ and node headers);\n' +
      'shared memory is off (data goes in-band) and vaccel-crypto-backend will not run until `npm rebuild @vaccel/memory` succeeds',
  );
}
