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

/** A median and its interval as `12.3 [12.1, 12.6]`. */
export function formatWithCi(value: number, ci: readonly [number, number], digits = 3): string {
  const f = (v: number) => (digits === 3 || Math.abs(v) >= 1000 ? formatNumber(v) : v.toPrecision(digits));
  return Number.isNaN(ci[0]) ? f(value) : `${f(value)} [${f(ci[0])}, ${f(ci[1])}]`;
}

const pad = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
};

/** The figure's points and comparisons as Markdown tables. */
export function markdown(result: FigureResult): string {
  const lines = [`## ${result.name}: ${result.title}`, '', `Machine: ${formatMachine(result.machine)}`, ''];
  lines.push(
    `Medians${result.options.quick ? ' (quick run)' : ''} with their 95 % bootstrap intervals; n = samples; spread = IQR / median.`,
    '',
    `| ${result.xTitle} | metric | series | median [95 % CI] | unit | n | spread |`,
    '|---|---|---|---:|---|---:|---:|',
  );
  for (const p of result.points) {
    lines.push(
      `| ${p.xLabel} | ${p.metric} | ${p.series} | ${formatWithCi(p.summary.median, p.summary.ci95)} | ${p.unit} | ${p.summary.n} | ${spreadPercent(p.summary).toFixed(1)}% |`,
    );
  }
  if (result.comparisons.length > 0) {
    // Against the in-process path the ratio is the guest's overhead; against a floor (C, Go) it
    // is how far the path is from what the transport allows.
    const baselines = new Set(result.comparisons.map((c) => c.host));
    const baseline = baselines.size === 1 ? [...baselines][0]! : 'baseline';
    lines.push(
      '',
      baseline === 'host (in-process)'
        ? `| ${result.xTitle} | metric | guest path | guest / host [95 % CI] | overhead |`
        : `| ${result.xTitle} | metric | path | path / ${baseline} [95 % CI] | cost over it |`,
      '|---|---|---|---:|---:|',
    );
    for (const c of result.comparisons) {
      lines.push(
        `| ${c.xLabel} | ${c.metric} | ${c.guest} | ${formatWithCi(c.ratio, c.ratioCi95, 4)} | ${c.overheadPercent.toFixed(1)}% |`,
      );
    }
  }
  if (result.targets?.length) {
    lines.push('', '| target | measured [95 % CI] | bar | goal | met |', '|---|---:|---:|---:|---|');
    for (const t of result.targets) {
      const rel = t.lowerIsBetter ? '≤' : '≥';
      lines.push(
        `| ${t.figure} | ${formatWithCi(t.value, t.ci95, 4)} | ${rel} ${formatNumber(t.bar)} | ${rel} ${formatNumber(t.goal)} | ${t.met ? 'yes' : 'no'} |`,
      );
    }
  }
  if (result.notes.length > 0) lines.push('', ...result.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** A console summary. */
export function consoleReport(result: FigureResult): string {
  const rows = [[result.xTitle, 'metric', 'series', 'median [95% CI]', 'unit', 'n', 'vs host [95% CI]']];
  for (const p of result.points) {
    const c = result.comparisons.find(
      (c) => c.guest === p.series && c.xLabel === p.xLabel && c.metric === p.metric,
    );
    rows.push([
      p.xLabel,
      p.metric,
      p.series,
      formatWithCi(p.summary.median, p.summary.ci95),
      p.unit,
      String(p.summary.n),
      c
        ? `×${formatWithCi(c.ratio, c.ratioCi95, 4)} (${c.overheadPercent >= 0 ? '+' : ''}${c.overheadPercent.toFixed(1)}%)`
        : '',
    ]);
  }
  let text = `${result.title}\n${formatMachine(result.machine)}\n${pad(rows)}\n`;
  if (result.targets?.length) {
    const targetRows = [['target', 'measured [95% CI]', 'bar', 'goal', 'met']];
    for (const t of result.targets) {
      const rel = t.lowerIsBetter ? '≤' : '≥';
      targetRows.push([
        t.figure,
        formatWithCi(t.value, t.ci95, 4),
        `${rel} ${formatNumber(t.bar)}`,
        `${rel} ${formatNumber(t.goal)}`,
        t.met ? 'yes' : 'NO',
      ]);
    }
    text += `\n${pad(targetRows)}\n`;
  }
  return text;
}

/** CSV of every point. */
export function csv(result: FigureResult): string {
  const header = 'figure,series,x,x_label,metric,unit,median,ci95_low,ci95_high,q1,q3,min,max,p99,n';
  const rows = result.points.map((p) =>
    [
      result.name,
      JSON.stringify(p.series),
      p.x,
      JSON.stringify(p.xLabel),
      JSON.stringify(p.metric),
      p.unit,
      p.summary.median,
      p.summary.ci95[0],
      p.summary.ci95[1],
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

/**
 * Writes `<name>.json`, `.csv`, `.md`, `.svg` and `.png` into `dir`; returns the paths written.
 * Where the plotting packages are not installed (a VM guest gets the slim packages only) the
 * plots are left out.
 */
export async function writeResult(dir: string, result: FigureResult): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const plot = await import('./plot.js').then(
    (module) => module.renderPlot(result),
    (error: unknown) => {
      if ((error as NodeJS.ErrnoException)?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
      return undefined;
    },
  );
  const files: [string, string | Buffer][] = [
    [`${result.name}.json`, `${JSON.stringify(result, null, 2)}\n`],
    [`${result.name}.csv`, csv(result)],
    [`${result.name}.md`, `${markdown(result)}\n${plot ? `![${result.name}](${result.name}.svg)\n` : ''}`],
    ...(plot
      ? ([
          [`${result.name}.svg`, plot.svg],
          [`${result.name}.png`, plot.png],
        ] as [string, Buffer | string][])
      : []),
  ];
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
