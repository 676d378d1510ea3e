/**
 * `@vaccel/remote/guest`: the `@vaccel/core` API for guest functions, as one bundled, tree-shaken
 * ES module (built by esbuild into `dist/guest/`), so a cold process loads a few files instead of
 * ~200 modules. The RPC plugin is in the bundle but loads only when a runtime opens with an agent
 * address (`VACCEL_RPC_ADDRESS`, or `Vaccel.open({ rpcAddress })`); builtin plugins, generated
 * protobuf descriptors and the shared-memory service load on first use too.
 *
 * ```ts
 * import { Vaccel } from '@vaccel/remote/guest';
 * await using vaccel = await Vaccel.open(); // VACCEL_RPC_ADDRESS=unix:///run/vaccel.sock
 * ```
 *
 * Import everything from here (not also from `@vaccel/core`: that would be a second copy, whose
 * `VaccelError` is another class). To build an RPC plugin object yourself, use `@vaccel/remote`.
 * @module
 */
import { definePluginModule } from '@vaccel/core';

// `Vaccel.open` with an agent address loads the RPC plugin from this bundle, not a second copy.
definePluginModule('@vaccel/remote', () => import('./plugin.js'));

export * from '@vaccel/core';
