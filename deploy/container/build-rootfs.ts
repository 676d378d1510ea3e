/**
 * Builds the agent's container root filesystem from this repository and the machine's Debian
 * libraries, with no registry pull: Node (this one), the shared libraries it and the native addons
 * link (found with ldd), the agent's workspace packages (built dist/, the shipped models, the
 * memory addon) and their npm dependencies (this platform's binaries only).
 *
 *   npm run container:build -- --out DIR [--tar FILE]
 *
 * Then `podman import` the tar with the Containerfile's settings (see Containerfile, docs/deploy.md).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = fileURLToPath(new URL('../../', import.meta.url));
/** Where the agent runs as (uid:gid), matching the Kubernetes manifests. */
export const AGENT_UID = 10001;
export const NODE_IN_IMAGE = '/usr/local/bin/node';
export const AGENT_BIN = '/app/node_modules/@vaccel/agent/bin/vaccel-agent.js';
/** Host tools the image carries, from Debian's util-linux. */
export const UTIL_LINUX_TOOLS = ['prlimit', 'setpriv'];

const skipFile = (path: string) =>
  /\.(d\.ts|map|md)$/.test(path) || /\/(test|tests|docs?|examples?)\//.test(path);
// onnxruntime-node ships every platform's binaries: keep this one's.
const platform = `${process.platform}/${process.arch}`;
const skipBinary = (path: string) =>
  /onnxruntime-node\/bin\/napi-v\d+\//.test(path) && !path.includes(`/${platform}/`);

/** @vaccel/agent and the workspace packages it depends on, transitively (runtime dependencies only). */
function agentWorkspaces(workspaces: Map<string, string>): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    const dir = workspaces.get(name);
    if (seen.has(name) || !dir) return;
    seen.add(name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of [
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
    ])
      if (dep.startsWith('@vaccel/')) visit(dep);
  };
  visit('@vaccel/agent');
  return [...seen];
}

function workspaceDirs(): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const dir of readdirSync(join(repo, 'packages'))) {
    const manifest = join(repo, 'packages', dir, 'package.json');
    if (existsSync(manifest))
      dirs.set(JSON.parse(readFileSync(manifest, 'utf8')).name, join(repo, 'packages', dir));
  }
  return dirs;
}

/** npm packages `names` need at run time (dependencies and installed optional ones), transitively. */
function npmClosure(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name) || name.startsWith('@vaccel/')) return;
    const dir = join(repo, 'node_modules', name);
    if (!existsSync(dir)) return; // an optional dependency for another platform
    seen.add(name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of [
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
    ])
      visit(dep);
  };
  for (const name of names) visit(name);
  return [...seen].sort();
}

/** Shared libraries (absolute paths) that ELF `files` load, per ldd. */
function sharedLibraries(files: readonly string[]): Set<string> {
  const libs = new Set<string>();
  for (const file of files) {
    const out = execFileSync('ldd', [file], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
      if (m && !m[1]!.startsWith(repo)) libs.add(m[1]!);
    }
  }
  return libs;
}

const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );

/** Builds the root filesystem into `out` (which must not exist or be empty). */
export function buildRootfs(out: string): { files: number } {
  for (const dir of [
    'usr/local/bin',
    'app/node_modules/@vaccel',
    'etc/vaccel',
    'tmp',
    'run/vaccel',
    'proc',
    'dev',
    'sys',
  ])
    mkdirSync(join(out, dir), { recursive: true });
  chmodSync(join(out, 'tmp'), 0o1777);
  const copy = (from: string, to: string) => {
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
  };
  copy(process.execPath, join(out, NODE_IN_IMAGE));
  chmodSync(join(out, NODE_IN_IMAGE), 0o755);
  // util-linux tools the agent starts guest-model runners with: prlimit caps a runner's memory,
  // setpriv ties it to the agent (parent-death signal).
  const tools = UTIL_LINUX_TOOLS.map((tool) => {
    const path = join('/usr/bin', tool);
    if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install util-linux`);
    copy(path, join(out, path));
    chmodSync(join(out, path), 0o755);
    return path;
  });
  const workspaces = workspaceDirs();
  const natives: string[] = [process.execPath, ...tools];
  const external = new Set<string>();
  for (const name of agentWorkspaces(workspaces)) {
    const dir = workspaces.get(name);
    if (!dir || !existsSync(join(dir, 'dist')))
      throw new Error(`${name} is not built: run \`npm run build\``);
    const target = join(out, 'app/node_modules', name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of [
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
    ])
      external.add(dep);
    copy(join(dir, 'package.json'), join(target, 'package.json'));
    for (const sub of ['dist', 'bin', 'models', 'build/Release']) {
      if (!existsSync(join(dir, sub))) continue;
      for (const file of walk(join(dir, sub))) {
        const rel = relative(dir, file);
        if (skipFile(`/${rel}`) || (sub === 'build/Release' && !file.endsWith('.node'))) continue;
        copy(file, join(target, rel));
        if (file.endsWith('.node')) natives.push(file);
      }
    }
  }
  for (const name of npmClosure([...external])) {
    const dir = realpathSync(join(repo, 'node_modules', name));
    for (const file of walk(dir)) {
      const rel = relative(dir, file);
      const path = `/${name}/${rel}`;
      if (skipFile(path) || skipBinary(path)) continue;
      copy(file, join(out, 'app/node_modules', name, rel));
      if (/\.(node|so(\.\d+)*)$/.test(file)) natives.push(file);
    }
  }
  // The libraries those binaries link: the machine's own (Debian's libc, libstdc++ …).
  for (const lib of sharedLibraries(natives)) copy(realpathSync(lib), join(out, lib));
  writeFileSync(
    join(out, 'etc/passwd'),
    `root:x:0:0:root:/:/sbin/nologin\nvaccel:x:${AGENT_UID}:${AGENT_UID}:vaccel:/app:/sbin/nologin\n`,
  );
  writeFileSync(join(out, 'etc/group'), `root:x:0:\nvaccel:x:${AGENT_UID}:\n`);
  chownSync(join(out, 'run/vaccel'), AGENT_UID, AGENT_UID);
  return { files: walk(out).length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, tar: { type: 'string' } } });
  if (!values.out) {
    console.error('usage: build-rootfs.ts --out DIR [--tar FILE]');
    process.exit(2);
  }
  const { files } = buildRootfs(values.out);
  console.log(`wrote ${values.out} (${files} files)`);
  if (values.tar) {
    execFileSync('tar', ['--numeric-owner', '-C', values.out, '-cf', values.tar, '.']);
    console.log(`wrote ${values.tar}: podman import it as deploy/container/Containerfile says`);
  }
}
