/**
 * What a figure measured elsewhere (e.g. `vaccel-vm`'s virtio-crypto fig2, which needs a VM) uses
 * to produce the same result shape, summaries, console report and plots as the figures here.
 * @module
 */
export type { FigureOptions } from './figure.js';
export { describeMachine, type MachineInfo } from './machine.js';
export { formatBytes, HOST } from './paths.js';
export { Progress } from './progress.js';
export { consoleReport, writeResult } from './report.js';
export { type Baseline, compare, compareWith, type FigureResult, type Point, type Target } from './result.js';
export { ratio, summarize } from './stats.js';
