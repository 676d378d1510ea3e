/**
 * Output of a run: a console table, and JSON, CSV and Markdown files.
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatMachine } from './machine.js';
import { type Comparison, compareWith, type FigureResult } from './result.js';
import { spreadPercent } from './stats.js';

/** A number with 3 significant digits (no exponent for the ranges we print). */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

/** A median and its interval as `12.3 [12.1, 12.6]`. */
export function formatWithCi(value: number, ci: readonly [number, number] | undefined, digits = 3): string {
  const f = (v: number) => (digits === 3 || Math.abs(v) >= 1000 ? formatNumber(v) : v.toPrecision(digits));
  // No interval: NaN, or null once through JSON, or none at all in an old result.
  return ci === undefined || !Number.isFinite(ci[0]) ? f(value) : `${f(value)} [${f(ci[0])}, ${f(ci[1])}]`;
}

const pad = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
};

/** The figure's points and comparisons as Markdown tables. */
export function markdown(result: FigureResult): string {
  const lines = [`## ${result.name}: ${result.title}`, '', `Machine: ${formatMachine(result.machine)}`, ''];
  // A result written before summaries carried an interval (e.g. fig2-virtio-crypto) has none to show.
  const intervals = result.points.some((p) => p.summary.ci95 !== undefined);
  lines.push(
    `Medians${result.options.quick ? ' (quick run)' : ''}${intervals ? ' with their 95 % bootstrap intervals' : ''}; n = samples; spread = IQR / median.`,
    '',
    `| ${result.xTitle} | metric | series | median${intervals ? ' [95 % CI]' : ''} | unit | n | spread |`,
    '|---|---|---|---:|---|---:|---:|',
  );
  for (const p of result.points) {
    lines.push(
      `| ${p.xLabel} | ${p.metric} | ${p.series} | ${formatWithCi(p.summary.median, p.summary.ci95)} | ${p.unit} | ${p.summary.n} | ${spreadPercent(p.summary).toFixed(1)}% |`,
    );
  }
  // One table per baseline, its heading naming what the ratios divide by: against the in-process
  // path a ratio is the guest's overhead; against a floor (C, Go) or a reference path it is how far
  // the path is from it.
  const byBaseline = new Map<string, Comparison[]>();
  for (const c of result.comparisons) byBaseline.set(c.host, [...(byBaseline.get(c.host) ?? []), c]);
  for (const [baseline, comparisons] of byBaseline) {
    lines.push(
      '',
      baseline === HOST
        ? `| ${result.xTitle} | metric | guest path | guest / ${HOST}${intervals ? ' [95 % CI]' : ''} | overhead |`
        : `| ${result.xTitle} | metric | path | path / ${baseline}${intervals ? ' [95 % CI]' : ''} | cost over it |`,
      '|---|---|---|---:|---:|',
    );
    for (const c of comparisons) {
      lines.push(
        `| ${c.xLabel} | ${c.metric} | ${c.guest} | ${formatWithCi(c.ratio, c.ratioCi95, 4)} | ${formatCost(c)} |`,
      );
    }
  }
  if (byBaseline.size > 0) {
    const columns = [
      ...new Set([...byBaseline.keys()].map((b) => (b === HOST ? 'overhead' : 'cost over it'))),
    ];
    const named = columns.join(' and ');
    lines.push(
      '',
      `${named[0]!.toUpperCase()}${named.slice(1)}: the time per op (for a throughput, per byte, FLOP or call) above the baseline's, in % between half and twice it; past that as a factor (×9.21: 9.21 times the baseline's time; ÷5.46: a 5.46th of it).`,
    );
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
  for (const table of result.tables ?? []) {
    const cell = (text: string) => text.replaceAll('|', '\\|');
    lines.push(
      '',
      `### ${table.title}`,
      '',
      `| ${table.columns.map(cell).join(' | ')} |`,
      `|${table.columns.map((_, i) => (table.align?.[i] === 'r' ? '---:' : '---')).join('|')}|`,
      ...table.rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
    );
  }
  if (result.notes.length > 0) lines.push('', ...result.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** The in-process path's series name (paths.ts's HOST; not imported: it pulls in the runtime). */
const HOST = 'host (in-process)';

/**
 * A comparison's cost, in the direction of the time it takes: the time per op (per byte, FLOP or
 * call for a throughput) against the baseline's, as a percentage between half and twice it and as
 * a factor past that, so a path 9× slower reads `×9.21`, not `+821.1%`, and one 45× faster `÷45.6`,
 * not `-97.8%`.
 */
export function formatCost(c: Pick<Comparison, 'overheadPercent'>): string {
  const factor = 1 + c.overheadPercent / 100;
  if (!Number.isFinite(factor) || factor <= 0) return `${c.overheadPercent}%`;
  if (factor >= 2) return `×${formatNumber(factor)}`;
  if (factor <= 0.5) return `÷${formatNumber(1 / factor)}`;
  return `${c.overheadPercent > 0 ? '+' : ''}${c.overheadPercent.toFixed(1)}%`;
}

/** A console summary. */
export function consoleReport(result: FigureResult): string {
  const rows = [[result.xTitle, 'metric', 'series', 'median [95% CI]', 'unit', 'n', 'vs baseline [95% CI]']];
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
      c ? `÷ ${c.host}: ×${formatWithCi(c.ratio, c.ratioCi95, 4)} (${formatCost(c)})` : '',
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
  for (const table of result.tables ?? [])
    text += `\n${table.title}\n${pad([table.columns, ...table.rows])}\n`;
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

/** The files of a result that hold its comparisons: its JSON and its page (linking its plot if `plotted`). */
const pages = (result: FigureResult, plotted: boolean): [string, string][] => [
  [`${result.name}.json`, `${JSON.stringify(result, null, 2)}\n`],
  [`${result.name}.md`, `${markdown(result)}\n${plotted ? `![${result.name}](${result.name}.svg)\n` : ''}`],
];

const write = (dir: string, files: [string, string | Buffer][]): string[] =>
  files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });

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
  return write(dir, [
    ...pages(result, plot !== undefined),
    [`${result.name}.csv`, csv(result)],
    ...(plot
      ? ([
          [`${result.name}.svg`, plot.svg],
          [`${result.name}.png`, plot.png],
        ] as [string, Buffer | string][])
      : []),
  ]);
}

/**
 * Re-renders a written result from its JSON, measuring nothing: the comparisons are recomputed
 * from its points and the baselines it declares (a result without any keeps its own), and its
 * JSON and Markdown are rewritten beside it; the CSV and the plots, which show no comparison, are
 * kept. Returns the paths written.
 */
export function renderResult(jsonPath: string): string[] {
  const result = JSON.parse(readFileSync(jsonPath, 'utf8')) as FigureResult;
  if (result.baselines) result.comparisons = compareWith(result.points, result.baselines);
  const dir = dirname(jsonPath);
  return write(dir, pages(result, existsSync(join(dir, `${result.name}.svg`))));
}
