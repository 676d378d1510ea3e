/**
 * Builds the guest: Debian's kernel and busybox-static (fetched with apt), this machine's node
 * binary with the libraries it links, and the slim guest packages (@vaccel/core, remote, ttrpc,
 * cli — no native code, no models), packed into a gzip initramfs under a cache folder.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { FIG7_IMAGE_DIR, FIG7_SIDES, fig7ImageName, testImage } from '@vaccel/bench/fig7';
import { type CpioEntry, cpioNewc } from './cpio.js';

/** Where the built guest lives. */
export interface GuestImage {
  kernel: string;
  initrd: string;
}

/**
 * The kernel modules the guest loads, in dependency order: virtio over PCI, virtio-serial and
 * virtio-vsock (the agent's transports), virtio-crypto (registers `virtio_crypto_aes_cbc` when the
 * VM has the device) and AF_ALG with NETLINK_CRYPTO (the kernel crypto API from user space:
 * kcapi-enc, OpenSSL's afalg).
 */
export const GUEST_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'virtio_console',
  'vsock',
  'vmw_vsock_virtio_transport_common',
  'vmw_vsock_virtio_transport',
  'crypto_engine',
  'virtio_crypto',
  'af_alg',
  'algif_skcipher',
  'crypto_user',
];

/**
 * Debian packages whose files go into the guest: the kernel crypto API tools (kcapi-enc) and
 * OpenSSL with its afalg engine (openssl speed -engine afalg measures the device).
 */
const GUEST_TOOLS: readonly { pkg: string; files: readonly string[] }[] = [
  { pkg: 'kcapi-tools', files: ['usr/bin/kcapi-enc'] },
  { pkg: 'libkcapi1', files: ['usr/lib/x86_64-linux-gnu/libkcapi.so.1'] },
  { pkg: 'openssl', files: ['usr/bin/openssl'] },
  {
    pkg: 'libssl3',
    files: [
      'usr/lib/x86_64-linux-gnu/libssl.so.3',
      'usr/lib/x86_64-linux-gnu/libcrypto.so.3',
      'usr/lib/x86_64-linux-gnu/engines-3/afalg.so',
    ],
  },
];

const root = fileURLToPath(new URL('../../../', import.meta.url));
const guestDir = fileURLToPath(new URL('../guest/', import.meta.url));

const run = (command: string, args: string[], cwd?: string): string =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Downloads and unpacks a Debian package into `dir/<name>/` (once). */
function debianPackage(cacheDir: string, name: string): string {
  const out = join(cacheDir, 'pkg', name);
  if (existsSync(out)) return out;
  const debs = join(cacheDir, 'debs');
  mkdirSync(debs, { recursive: true });
  try {
    run('apt-get', ['download', name], debs);
  } catch (error) {
    throw new Error(
      `cannot download the Debian package ${name} (${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}); run \`apt-get update\` first, as root`,
    );
  }
  const deb = readdirSync(debs).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${name} left no .deb in ${debs}`);
  mkdirSync(out, { recursive: true });
  run('dpkg-deb', ['-x', join(debs, deb), out]);
  return out;
}

/** The versioned kernel package linux-image-amd64 points at. */
function kernelPackage(): string {
  const depends = run('apt-cache', ['depends', 'linux-image-amd64']);
  const name = /Depends:\s+(linux-image-[\d.]+-\d+-amd64)/.exec(depends)?.[1];
  if (!name) throw new Error('apt-cache knows no linux-image-amd64; run `apt-get update` first');
  return name;
}

const file = (path: string, source: string, mode?: number): CpioEntry => ({
  path,
  kind: 'file',
  data: readFileSync(source),
  ...(mode === undefined ? {} : { mode }),
});

/** Every file below `dir`, as entries under `to` (directories first). */
function tree(dir: string, to: string, skip: (rel: string) => boolean = () => false): CpioEntry[] {
  const entries: CpioEntry[] = [{ path: to, kind: 'dir' }];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (skip(relative(dir, path))) continue;
    if (statSync(path).isDirectory())
      entries.push(...tree(path, `${to}/${name}`, (rel) => skip(join(name, rel))));
    else entries.push(file(`${to}/${name}`, path, statSync(path).mode & 0o777));
  }
  return entries;
}

/**
 * Our packages the guest gets (no models): the library, the CLI, the bench, and the memory addon
 * (built on this host for this node, which the guest runs too) for ivshmem shared memory.
 */
const GUEST_WORKSPACES = ['core', 'memory', 'process', 'ttrpc', 'protocol', 'remote', 'cli', 'bench'];
/** Example functions (examples/<name>/index.mjs) the guest can run; the HTTP one needs the host's ONNX plugin embedded, so only offloaded. */
const EXAMPLE_FUNCTIONS = ['batch-function', 'http-function'];
/** Dependencies of those that only the host uses (native code, plots, the agent itself). */
const HOST_ONLY = new Set(['@vaccel/agent', '@vaccel/plugin-onnx', 'sharp', 'vega', 'vega-lite']);

const noMapsOrTypes = (rel: string) => rel.endsWith('.map') || rel.endsWith('.d.ts');

/** The npm packages (hoisted in the root node_modules) that `names` need, transitively. */
function npmClosure(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name) || HOST_ONLY.has(name) || name.startsWith('@vaccel/')) return;
    const dir = join(root, 'node_modules', name);
    if (!existsSync(join(dir, 'package.json'))) throw new Error(`${name} is not installed; run \`npm ci\``);
    seen.add(name);
    const { dependencies = {} } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    for (const dependency of Object.keys(dependencies)) visit(dependency);
  };
  for (const name of names) visit(name);
  return [...seen].sort();
}

/** The slim guest packages, as installed into /app/node_modules. */
function guestPackages(): CpioEntry[] {
  const entries: CpioEntry[] = [
    { path: '/app/node_modules', kind: 'dir' },
    { path: '/app/node_modules/@vaccel', kind: 'dir' },
  ];
  const external = new Set<string>();
  for (const pkg of GUEST_WORKSPACES) {
    const dir = join(root, 'packages', pkg);
    if (!existsSync(join(dir, 'dist')))
      throw new Error(`packages/${pkg} is not built; run \`npm run build\``);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    for (const dependency of Object.keys(manifest.dependencies ?? {})) external.add(dependency);
    entries.push(
      { path: `/app/node_modules/@vaccel/${pkg}`, kind: 'dir' },
      file(`/app/node_modules/@vaccel/${pkg}/package.json`, join(dir, 'package.json')),
    );
    entries.push(...tree(join(dir, 'dist'), `/app/node_modules/@vaccel/${pkg}/dist`, noMapsOrTypes));
    if (existsSync(join(dir, 'bin')))
      entries.push(...tree(join(dir, 'bin'), `/app/node_modules/@vaccel/${pkg}/bin`));
    const addon = join(dir, 'build', 'Release');
    if (existsSync(addon))
      entries.push(
        { path: `/app/node_modules/@vaccel/${pkg}/build`, kind: 'dir' },
        ...tree(addon, `/app/node_modules/@vaccel/${pkg}/build/Release`, (rel) => !rel.endsWith('.node')),
      );
  }
  const scopes = new Set<string>();
  for (const name of npmClosure([...external])) {
    const scope = name.startsWith('@') ? name.split('/')[0]! : undefined;
    if (scope && !scopes.has(scope)) {
      scopes.add(scope);
      entries.push({ path: `/app/node_modules/${scope}`, kind: 'dir' });
    }
    entries.push(...tree(join(root, 'node_modules', name), `/app/node_modules/${name}`, noMapsOrTypes));
  }
  return entries;
}

/** `entries` preceded by a directory entry for each parent not in `made` (which then records them). */
function withParents(entries: CpioEntry[], made: Set<string>): CpioEntry[] {
  const dirs = new Set<string>();
  for (const { path } of entries)
    for (let d = dirname(path); d !== '/' && !made.has(d); d = dirname(d)) dirs.add(d);
  for (const d of dirs) made.add(d);
  const parents = [...dirs].sort((a, b) => a.length - b.length);
  return [...parents.map((path): CpioEntry => ({ path, kind: 'dir' })), ...entries];
}

/** node and the shared libraries it links (from ldd), at their own paths. */
function nodeBinary(made: Set<string>): CpioEntry[] {
  const entries: CpioEntry[] = [file('/bin/node', realpathSync(process.execPath), 0o755)];
  for (const line of run('ldd', [process.execPath]).split('\n')) {
    const path = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1];
    if (path) entries.push(file(path, realpathSync(path), 0o755));
  }
  return withParents(entries, made);
}

/** The guest tools' files, from their Debian packages (their other libraries come with node's). */
function guestTools(cacheDir: string, made: Set<string>): CpioEntry[] {
  const entries = GUEST_TOOLS.flatMap(({ pkg, files }) => {
    const dir = debianPackage(cacheDir, pkg);
    return files.map((rel) => file(`/${rel}`, realpathSync(join(dir, rel)), 0o755));
  });
  return withParents(entries, made);
}

/** Every module of the kernel tree `dir`, by name. */
function moduleIndex(dir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ko')) index.set(entry.name.slice(0, -3), path);
    }
  };
  walk(dir);
  return index;
}

/** Builds (or reuses, unless `rebuild`) the guest kernel and initramfs under `cacheDir`. */
export async function buildGuest(
  cacheDir: string,
  options: { rebuild?: boolean; log?: (line: string) => void } = {},
): Promise<GuestImage> {
  const log = options.log ?? (() => {});
  // A new guest recipe (modules, tools, init scripts) gets a new file, so a stale cache is never used.
  // Our packages' built files count too: a guest never runs code older than the host's build.
  const recipe = createHash('sha256')
    .update(JSON.stringify({ GUEST_MODULES, GUEST_TOOLS, GUEST_WORKSPACES }))
    .update(readFileSync(join(guestDir, 'init')))
    .update(readFileSync(join(guestDir, 'guest-run.mjs')))
    .update(readFileSync(join(guestDir, 'transports.mjs')));
  for (const entry of guestPackages()) {
    recipe.update(`${entry.kind} ${entry.path}\n`);
    if (entry.kind === 'file') recipe.update(entry.data);
  }
  const initrd = join(cacheDir, `initramfs-${recipe.digest('hex').slice(0, 12)}.cpio.gz`);
  const kernelName = kernelPackage();
  const kernelRoot = debianPackage(cacheDir, kernelName);
  const version = readdirSync(join(kernelRoot, 'lib', 'modules'))[0]!;
  const kernel = join(kernelRoot, 'boot', `vmlinuz-${version}`);
  if (existsSync(initrd) && !options.rebuild) return { kernel, initrd };
  log(`building the guest initramfs (kernel ${version})`);
  const busybox = join(debianPackage(cacheDir, 'busybox-static'), 'bin', 'busybox');
  const applets = run(busybox, ['--list'])
    .split('\n')
    .filter((a) => a && a !== 'busybox');
  const modules = moduleIndex(join(kernelRoot, 'lib', 'modules', version, 'kernel'));
  const topDirs = [
    '/bin',
    '/dev',
    '/proc',
    '/sys',
    '/tmp',
    '/lib',
    '/lib/modules',
    '/app',
    '/examples',
    '/etc',
  ];
  const made = new Set(topDirs);
  const entries: CpioEntry[] = [
    ...topDirs.map((path): CpioEntry => ({ path, kind: 'dir' })),
    file('/bin/busybox', busybox, 0o755),
    ...applets.map((name): CpioEntry => ({ path: `/bin/${name}`, kind: 'symlink', target: 'busybox' })),
    file('/init', join(guestDir, 'init'), 0o755),
    { path: '/lib/modules/order', kind: 'file', data: Buffer.from(`${GUEST_MODULES.join('\n')}\n`) },
    ...GUEST_MODULES.map((name) => {
      const path = modules.get(name);
      if (!path) throw new Error(`kernel ${version} has no module ${name}`);
      return file(`/lib/modules/${name}.ko`, path);
    }),
    ...nodeBinary(made),
    ...guestTools(cacheDir, made),
    file('/app/guest-run.mjs', join(guestDir, 'guest-run.mjs')),
    file('/app/transports.mjs', join(guestDir, 'transports.mjs')),
    ...[
      ['vaccel', 'cli/bin/vaccel.js'],
      ['vaccel-bench', 'bench/bin/vaccel-bench.js'],
    ].map(
      ([name, script]): CpioEntry => ({
        path: `/bin/${name}`,
        kind: 'file',
        mode: 0o755,
        data: Buffer.from(`#!/bin/sh\nexec /bin/node /app/node_modules/@vaccel/${script} "$@"\n`),
      }),
    ),
    ...guestPackages(),
    ...readdirSync(join(root, 'examples', 'images')).map((name) =>
      file(`/examples/${name}`, join(root, 'examples', 'images', name)),
    ),
    // The example functions, under /app so that they resolve @vaccel/* from /app/node_modules.
    { path: '/app/examples', kind: 'dir' },
    ...EXAMPLE_FUNCTIONS.flatMap((name): CpioEntry[] => [
      { path: `/app/examples/${name}`, kind: 'dir' },
      file(`/app/examples/${name}/index.mjs`, join(root, 'examples', name, 'index.mjs')),
    ]),
    // fig7's test images, made here with sharp: the guest has no native image library.
    { path: FIG7_IMAGE_DIR, kind: 'dir' },
    ...(await Promise.all(
      FIG7_SIDES.map(
        async (side): Promise<CpioEntry> => ({
          path: `${FIG7_IMAGE_DIR}/${fig7ImageName(side)}`,
          kind: 'file',
          data: await testImage(side),
        }),
      ),
    )),
  ];
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(initrd, gzipSync(cpioNewc(entries), { level: 1 }));
  log(`wrote ${initrd} (${(statSync(initrd).size / 2 ** 20).toFixed(1)} MiB)`);
  return { kernel, initrd };
}
