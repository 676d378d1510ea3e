/**
 * Resources: files or blobs (models, libraries, data) that sessions use by id.
 *
 * A resource's identity is the sha256 of its type and content, so registering the same model twice
 * yields the same resource (and the RPC plugin uploads it once per connection).
 * @module
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { VaccelError } from '../api/error.js';

/** Resource types (upstream `vaccel_resource_type_t`). */
export const ResourceType = Object.freeze({ Lib: 0, Data: 1, Model: 2 } as const);
/** A resource type number from {@link ResourceType}. */
export type ResourceType = (typeof ResourceType)[keyof typeof ResourceType];

/** One named piece of a resource, e.g. `model.onnx`. */
export interface ResourceBlob {
  readonly name: string;
  readonly data: Uint8Array;
}

/** What to make a resource from: files (a directory means the files directly in it) or blobs. */
export interface ResourceSpec {
  type: ResourceType;
  /** File or directory paths; read when the resource is created. */
  paths?: string | readonly string[];
  /** In-memory content. */
  blobs?: readonly ResourceBlob[];
}

/** A resource's content, as plugins see it. */
export interface ResourceData {
  /** Runtime-wide id (> 0). */
  readonly id: number;
  readonly type: ResourceType;
  /** Its content, in a stable (name-sorted) order. */
  readonly blobs: readonly ResourceBlob[];
  /** Hex sha256 of type and content: equal content ⇒ equal digest. */
  readonly digest: string;
  /** Total content bytes. */
  readonly size: number;
  /** A blob by name. @throws VaccelError `ENOENT` when absent. */
  blob(name: string): ResourceBlob;
}

/**
 * A handle on a resource. Creating a resource with content equal to a live one gives a new handle
 * on the same resource (same id and digest). Release each handle once you are done (or use
 * `await using`); releasing a handle twice is a no-op. The resource is freed when no handle and no
 * session holds it.
 */
export interface Resource extends ResourceData, AsyncDisposable {
  /** True once this handle is released. */
  readonly released: boolean;
  /** Drops this handle. Idempotent. */
  release(): Promise<void>;
}

const resourceTypes = new Set<number>(Object.values(ResourceType));

async function readPaths(paths: readonly string[]): Promise<ResourceBlob[]> {
  const blobs: ResourceBlob[] = [];
  for (const path of paths) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (cause) {
      throw new VaccelError('ENOENT', `resource path ${path} cannot be read`, { cause });
    }
    if (info.isDirectory()) {
      const entries = await readdir(path, { withFileTypes: true });
      for (const entry of entries.filter((e) => e.isFile())) {
        blobs.push({ name: entry.name, data: new Uint8Array(await readFile(join(path, entry.name))) });
      }
    } else {
      blobs.push({ name: basename(path), data: new Uint8Array(await readFile(path)) });
    }
  }
  return blobs;
}

/** Reads and normalises a spec into sorted blobs and their digest. @internal */
export async function loadResourceContent(
  spec: ResourceSpec,
): Promise<{ blobs: ResourceBlob[]; digest: string }> {
  if (!resourceTypes.has(spec.type)) throw new VaccelError('EINVAL', `resource type ${spec.type} is unknown`);
  const paths = spec.paths === undefined ? [] : typeof spec.paths === 'string' ? [spec.paths] : spec.paths;
  const blobs = [...(spec.blobs ?? []), ...(await readPaths(paths))];
  if (blobs.length === 0) throw new VaccelError('EINVAL', 'a resource needs paths or blobs');
  blobs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < blobs.length; i++) {
    if (blobs[i]!.name === blobs[i - 1]!.name) {
      throw new VaccelError('EINVAL', `resource has two blobs named ${blobs[i]!.name}`);
    }
  }
  // node:crypto loads on first use: a guest that registers no resource never pays for it.
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256').update(`vaccel-resource:${spec.type}\n`);
  for (const { name, data } of blobs) hash.update(`${name}\n${data.byteLength}\n`).update(data);
  return { blobs, digest: hash.digest('hex') };
}
