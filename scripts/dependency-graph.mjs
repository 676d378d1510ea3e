#!/usr/bin/env node
// The import graph of the workspace, for the dependency-direction check (scripts/test) and for
// reading: `node scripts/dependency-graph.mjs` prints the packages in layer order with their
// dependencies, any upward edge, undeclared import or cycle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The layers, innermost first: a package may depend only on packages of lower layers. A new
 * package gets its place here (the check fails until it has one).
 */
export const LAYERS = [
  ['core'],
  ['process', 'memory', 'ttrpc', 'tf2onnx'],
  ['protocol', 'plugin-onnx'],
  ['remote'],
  ['agent', 'vhost-user'],
  ['cli', 'conformance'],
  ['bench'],
  ['vm'],
];

/** Every workspace package: its directory name, npm name and @vaccel dependencies (runtime). */
export function packages() {
  return readdirSync(join(root, 'packages'))
    .filter((dir) => statSync(join(root, 'packages', dir)).isDirectory())
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8'));
      const deps = Object.keys({
        ...manifest.dependencies,
        ...manifest.optionalDependencies,
        ...manifest.peerDependencies,
      });
      return {
        dir,
        name: manifest.name,
        dependencies: deps.filter((d) => d.startsWith('@vaccel/')).map((d) => d.slice('@vaccel/'.length)),
      };
    });
}

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/\.(ts|mts|mjs|js)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

const IMPORT =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The imports of one source file: specifier and whether only types come through it. */
export function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const found = [];
  for (const match of text.matchAll(IMPORT)) {
    const specifier = match[3] ?? match[4];
    found.push({ specifier, typeOnly: Boolean(match[2]) });
  }
  return found;
}

/** What breaks the rules: undeclared @vaccel imports, upward edges, package and file cycles. */
export function problems() {
  const found = [];
  const all = packages();
  const layer = new Map(LAYERS.flatMap((names, i) => names.map((name) => [name, i])));
  for (const pkg of all) {
    if (!layer.has(pkg.dir)) {
      found.push(`packages/${pkg.dir} has no layer in scripts/dependency-graph.mjs LAYERS`);
      continue;
    }
    for (const dep of pkg.dependencies)
      if (!(layer.get(dep) < layer.get(pkg.dir)))
        found.push(`packages/${pkg.dir} depends on @vaccel/${dep}, which is not in an inner layer`);
    const src = join(root, 'packages', pkg.dir, 'src');
    let files = [];
    try {
      files = [...sources(src)];
    } catch {
      continue;
    }
    // Relative imports between this package's files, for the file-level cycle check.
    const edges = new Map();
    for (const file of files) {
      const targets = [];
      for (const { specifier } of importsOf(file)) {
        const scoped = /^@vaccel\/([^/]+)/.exec(specifier);
        if (scoped && scoped[1] !== pkg.dir && !pkg.dependencies.includes(scoped[1]))
          found.push(`${relative(root, file)} imports ${specifier}, not a dependency of ${pkg.name}`);
        // Type imports count too: a circle of types is a circle a reader has to follow.
        if (specifier.startsWith('.'))
          targets.push(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'));
      }
      edges.set(file, targets);
    }
    for (const cycle of cycles(edges))
      found.push(`import cycle in packages/${pkg.dir}: ${cycle.map((f) => relative(src, f)).join(' → ')}`);
  }
  const byDir = new Map(all.map((p) => [p.dir, p.dependencies]));
  for (const cycle of cycles(byDir)) found.push(`package cycle: ${cycle.join(' → ')}`);
  return found;
}

/** The import cycles among the source files below `dir` (relative imports). */
export function cyclesOf(dir) {
  const edges = new Map();
  for (const file of sources(dir))
    edges.set(
      file,
      importsOf(file)
        .filter(({ specifier }) => specifier.startsWith('.'))
        .map(({ specifier }) => resolve(dirname(file), specifier).replace(/\.js$/, '.ts')),
    );
  return cycles(edges);
}

/** The cycles of a graph, each as a path back to its start. */
function cycles(edges) {
  const found = [];
  const state = new Map(); // 1: on the path, 2: done
  const path = [];
  const visit = (node) => {
    state.set(node, 1);
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue;
      if (state.get(next) === 1) found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 2);
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const all = new Map(packages().map((p) => [p.dir, p]));
  for (const [i, names] of LAYERS.entries())
    for (const name of names)
      console.log(`${i}  ${name.padEnd(12)} → ${(all.get(name)?.dependencies ?? []).join(', ') || '—'}`);
  const found = problems();
  for (const problem of found) console.log(`✗ ${problem}`);
  if (found.length === 0) console.log('✓ every import points inward; no cycles');
  process.exitCode = found.length === 0 ? 0 : 1;
}
