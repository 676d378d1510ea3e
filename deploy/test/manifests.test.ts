/**
 * The Kubernetes manifests, checked without a cluster: every document validates against the
 * Kubernetes schemas (npm kubernetes-models), every kustomization names files that exist, every
 * container follows the hardening the docs promise, and every agent flag the manifests pass is one
 * the agent knows.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../kubernetes/', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

interface Doc {
  file: string;
  value: { apiVersion: string; kind: string; metadata?: { name?: string }; spec?: Record<string, unknown> };
}

function* yamlFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* yamlFiles(path);
    else if (entry.name.endsWith('.yaml')) yield path;
  }
}

const docs: Doc[] = [...yamlFiles(root)].flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${file}: YAML errors`);
    return { file, value: d.toJSON() as Doc['value'] };
  }),
);

/** The kubernetes-models class of a kind (the groups these manifests use). */
async function model(apiVersion: string, kind: string) {
  const path =
    apiVersion === 'v1' ? `kubernetes-models/v1/${kind}` : `kubernetes-models/${apiVersion}/${kind}`;
  const mod = (await import(path)) as Record<string, new (value: unknown) => { validate(): void }>;
  return mod[kind]!;
}

test('every manifest validates against the Kubernetes schemas', async () => {
  const objects = docs.filter((d) => d.value.kind !== 'Kustomization');
  assert.ok(objects.length >= 4, `${objects.length} objects`);
  for (const { file, value } of objects) {
    const Model = await model(value.apiVersion, value.kind);
    assert.doesNotThrow(() => new Model(value).validate(), `${file}: ${value.kind} ${value.metadata?.name}`);
  }
});

test('kustomizations list files that exist', () => {
  const kustomizations = docs.filter((d) => d.value.kind === 'Kustomization');
  assert.ok(kustomizations.length >= 2);
  for (const { file, value } of kustomizations) {
    const resources = (value as unknown as { resources: string[] }).resources;
    for (const resource of resources)
      assert.ok(existsSync(join(dirname(file), resource)), `${file}: ${resource}`);
  }
});

type Container = {
  name: string;
  image: string;
  args?: string[];
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
};
const podSpecs = docs
  .filter((d) => d.value.kind === 'DaemonSet' || d.value.kind === 'Deployment')
  .map((d) => ({
    file: d.file,
    spec: (d.value.spec as { template: { spec: Record<string, unknown> } }).template.spec,
  }));

test('pods run hardened: non-root, read-only root, no privilege escalation, probes, requests and limits', () => {
  assert.ok(podSpecs.length >= 2);
  for (const { file, spec } of podSpecs) {
    const pod = spec.securityContext as { runAsNonRoot?: boolean; runAsUser?: number };
    assert.equal(pod.runAsNonRoot, true, file);
    assert.ok((pod.runAsUser ?? 0) > 0, file);
    assert.equal(spec.automountServiceAccountToken, false, file);
    for (const c of spec.containers as Container[]) {
      const where = `${file}: ${c.name}`;
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], where);
      assert.ok(c.livenessProbe && c.readinessProbe, `${where}: probes`);
      assert.ok(
        c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory,
        `${where}: resources`,
      );
    }
  }
});

test("the agent's flags in the manifests are ones it knows; TCP off the node is TLS", () => {
  const help = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--conditions=@vaccel/source', join(repo, 'packages/agent/src/bin.ts'), '--help'],
    {
      encoding: 'utf8',
    },
  ).stdout;
  assert.match(help, /--tls-cert/);
  const agents = podSpecs.flatMap(({ file, spec }) =>
    (spec.containers as Container[])
      .filter((c) => c.image.includes('vaccel-agent'))
      .map((c) => ({ file, c })),
  );
  assert.ok(agents.length >= 2);
  for (const { file, c } of agents) {
    for (const flag of (c.args ?? []).filter((a) => a.startsWith('--')))
      assert.ok(help.includes(flag), `${file}: ${flag}`);
    const addresses = (c.args ?? []).filter((_, i, all) => all[i - 1] === '--address');
    for (const address of addresses)
      assert.match(address, /^(unix|tls):\/\//, `${file}: ${address} must be unix:// or tls://`);
  }
});
