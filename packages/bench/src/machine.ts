/**
 * What the figures were measured on, printed with every run.
 * @module
 */
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, release, totalmem, type } from 'node:os';

/** The machine and software a run measured. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  /** Plugin name → version, as loaded in the runs. */
  plugins: Record<string, string>;
  date: string;
}

function cpuModel(): string {
  const model = cpus()[0]?.model?.trim();
  if (model) return model;
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Describes this machine; `plugins` lists the plugins the run used. */
export function describeMachine(plugins: Record<string, string> = {}): MachineInfo {
  return {
    cpu: cpuModel(),
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()} ${arch()}`,
    node: process.version,
    plugins,
    date: new Date().toISOString(),
  };
}

/** One line for the console. */
export const formatMachine = (m: MachineInfo): string =>
  `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}` +
  (Object.keys(m.plugins).length
    ? `; plugins ${Object.entries(m.plugins)
        .map(([name, version]) => `${name}@${version}`)
        .join(' ')}`
    : '');
