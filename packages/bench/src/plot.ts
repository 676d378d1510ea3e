/**
 * Plots like the original figures: grouped bars per x, host dark and guest light, one panel per
 * metric, with the unit on the y axis. Vega-Lite → Vega → SVG; PNG through sharp.
 * @module
 */
import sharp from 'sharp';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { FigureResult } from './result.js';

/** Host dark, guests lighter. */
const COLORS = ['#1f3b73', '#8fb3e8', '#c9d9f2', '#9aa5b1'];

/** The Vega-Lite spec of a figure. */
export function plotSpec(result: FigureResult): TopLevelSpec {
  const series = [...new Set(result.points.map((p) => p.series))];
  const order = [...new Map(result.points.map((p) => [p.xLabel, p.x])).entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([label]) => label);
  const values = result.points.map((p) => ({
    x: p.xLabel,
    series: p.series,
    panel: `${p.metric} (${p.unit})`,
    median: p.summary.median,
    q1: p.summary.q1,
    q3: p.summary.q3,
  }));
  const spread = (panel: string) => {
    const medians = values.filter((v) => v.panel === panel).map((v) => v.median);
    return Math.max(...medians) / Math.max(Math.min(...medians), Number.MIN_VALUE);
  };
  const panels = [...new Set(values.map((v) => v.panel))];
  const panel = (name: string) => {
    const log = spread(name) > 100;
    // Log-scale bars need a positive baseline: the power of ten below the smallest value.
    const smallest = Math.min(...values.filter((v) => v.panel === name).map((v) => Math.min(v.median, v.q1)));
    const base = 10 ** Math.floor(Math.log10(smallest > 0 ? smallest : 1));
    const y = { type: 'quantitative', ...(log ? { scale: { type: 'log', domainMin: base } } : {}) } as const;
    const x = {
      field: 'x',
      type: 'ordinal',
      sort: order,
      title: result.xTitle,
      axis: { labelAngle: 0 },
    } as const;
    return {
      width: Math.max(360, order.length * series.length * 18),
      height: 220,
      transform: [{ filter: { field: 'panel', equal: name } }],
      layer: [
        {
          mark: 'bar',
          encoding: {
            x,
            xOffset: { field: 'series', sort: series },
            y: { ...y, field: 'median', title: `${name}${log ? ', log scale' : ''}` },
            ...(log ? { y2: { datum: base } } : {}),
            color: {
              field: 'series',
              sort: series,
              scale: { domain: series, range: COLORS.slice(0, series.length) },
              title: null,
            },
          },
        },
        {
          // The interquartile range of the repetitions.
          mark: { type: 'rule', color: '#333' },
          encoding: {
            x,
            xOffset: { field: 'series', sort: series },
            y: { ...y, field: 'q1' },
            y2: { field: 'q3' },
          },
        },
      ],
    };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: result.title,
      subtitle: `${result.machine.cpu}, ${result.machine.cores} cores, Node ${result.machine.node}; medians, bars = IQR`,
    },
    data: { values },
    vconcat: panels.map(panel),
    config: { legend: { orient: 'top' }, font: 'sans-serif', background: 'white' },
  } as TopLevelSpec;
}

/** Renders a figure to SVG text and PNG bytes. */
export async function renderPlot(result: FigureResult): Promise<{ svg: string; png: Buffer }> {
  const vega = compile(plotSpec(result)).spec;
  const view = new View(parse(vega), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = await sharp(Buffer.from(svg), { density: 144 })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
  return { svg, png };
}
