/**
 * The compute plugin: upstream's MINMAX and FPGA example ops (arraycopy, mmult, parallel,
 * vectoradd) on the CPU, MMULT on the TypeScript SGEMM kernel. A real FPGA backend would be
 * another plugin with the FPGA type bit and a higher priority.
 * @module
 */
import { computeHandlers } from '../ops/compute.js';
import { type Plugin, PluginType } from '../runtime/plugin.js';
import { sgemmKernel } from './sgemm-js/kernel.js';

/** Creates the compute plugin. */
export function computePlugin(): Plugin {
  return {
    name: 'compute',
    version: '0.1.0',
    types: PluginType.Cpu | PluginType.Software,
    ops: computeHandlers(sgemmKernel),
  };
}
