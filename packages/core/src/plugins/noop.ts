/**
 * The noop plugin: like upstream's debug/noop plugin, it validates its args (the runtime checks
 * every arg against upstream's size rules before dispatch) and echoes read arg i into write arg i,
 * so tests and benchmarks see data go through the whole path and come back.
 * @module
 */
import { OpType } from '../api/op.js';
import { type Plugin, PluginType } from '../runtime/plugin.js';

/** Creates the noop plugin. */
export function noopPlugin(): Plugin {
  return {
    name: 'noop',
    version: '0.1.0',
    types: PluginType.Debug | PluginType.Software,
    ops: {
      [OpType.Noop]: ({ read, write }, ctx) => {
        ctx.logger.debug({ session: ctx.session.id, read: read.length, write: write.length }, 'noop');
        write.forEach((arg, i) => {
          const source = read[i]?.buf;
          if (source) arg.buf.set(source.subarray(0, Math.min(source.byteLength, arg.buf.byteLength)));
        });
      },
    },
  };
}
