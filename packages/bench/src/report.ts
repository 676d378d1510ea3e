/**
 * Output of a run: a console table, and JSON, CSV and Markdown files.
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatMachine } from './machine.js';
import type { FigureResult } from './result.js';
import { spreadPercent } from './stats.js';

/** A number with 3 significant digits (no exponent for the ranges we print). */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

const pad = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
};

/** The figure's points and comparisons as Markdown tables. */
export function markdown(result: FigureResult): string {
  const lines = [`## ${result.name}: ${result.title}`, '', `Machine: ${formatMachine(result.machine)}`, ''];
  lines.push(
    `Medians of ${result.options.reps} repetitions${result.options.quick ? ' (quick run)' : ''}; spread = IQR / median.`,
    '',
    `| ${result.xTitle} | metric | series | median | unit | spread |`,
    '|---|---|---|---:|---|---:|',
  );
  for (const p of result.points) {
    lines.push(
      `| ${p.xLabel} | ${p.metric} | ${p.series} | ${formatNumber(p.summary.median)} | ${p.unit} | ${spreadPercent(p.summary).toFixed(1)}% |`,
    );
  }
  if (result.comparisons.length > 0) {
    lines.push(
      '',
      `| ${result.xTitle} | metric | guest path | guest / host | overhead |`,
      '|---|---|---|---:|---:|',
    );
    for (const c of result.comparisons) {
      lines.push(
        `| ${c.xLabel} | ${c.metric} | ${c.guest} | ${c.ratio.toFixed(3)} | ${c.overheadPercent.toFixed(1)}% |`,
      );
    }
  }
  if (result.notes.length > 0) lines.push('', ...result.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** A console summary. */
export function consoleReport(result: FigureResult): string {
  const rows = [[result.xTitle, 'metric', 'series', 'median', 'unit', 'spread', 'vs host']];
  for (const p of result.points) {
    const c = result.comparisons.find(
      (c) => c.guest === p.series && c.xLabel === p.xLabel && c.metric === p.metric,
    );
    rows.push([
      p.xLabel,
      p.metric,
      p.series,
      formatNumber(p.summary.median),
      p.unit,
      `${spreadPercent(p.summary).toFixed(1)}%`,
      c
        ? `×${c.ratio.toFixed(3)} (${c.overheadPercent >= 0 ? '+' : ''}${c.overheadPercent.toFixed(1)}%)`
        : '',
    ]);
  }
  return `${result.title}\n${formatMachine(result.machine)}\n${pad(rows)}\n`;
}

/** CSV of every point. */
export function csv(result: FigureResult): string {
  const header = 'figure,series,x,x_label,metric,unit,median,q1,q3,min,max,p99,n';
  const rows = result.points.map((p) =>
    [
      result.name,
      JSON.stringify(p.series),
      p.x,
      JSON.stringify(p.xLabel),
      JSON.stringify(p.metric),
      p.unit,
      p.summary.median,
      p.summary.q1,
      p.summary.q3,
      p.summary.min,
      p.summary.max,
      p.summary.p99,
      p.summary.n,
    ].join(','),
  );
  return `${[header, ...rows].join('\n')}\n`;
}

/** Writes `<name>.json`, `.csv`, `.md`, `.svg` and `.png` into `dir`; returns the paths written. */
export async function writeResult(dir: string, result: FigureResult): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const { svg, png } = await (await import('./plot.js')).renderPlot(result);
  const files: [string, string | Buffer][] = [
    [`${result.name}.json`, `${JSON.stringify(result, null, 2)}\n`],
    [`${result.name}.csv`, csv(result)],
    [`${result.name}.md`, `${markdown(result)}\n![${result.name}](${result.name}.svg)\n`],
    [`${result.name}.svg`, svg],
    [`${result.name}.png`, png],
  ];
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
