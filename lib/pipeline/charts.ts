// Inline SVG charts for the pipeline report: a line chart (training curves) and a grouped bar chart
// (score per policy). Plain strings, no chart library, no script: the report stays one self-contained
// file that any browser (or an HTML-to-PDF tool) renders. Every text that reaches the SVG is escaped.
import { TalariaError } from '../native.js';
import { describe } from '../world/guards.js';
import { requireArray, requireOptions } from './guards.js';
import { escapeHtml } from './html.js';

/** One line: points [x, y]; a null or non-finite y (a NaN loss) leaves a gap, a non-finite x is skipped. */
export interface ChartSeries {
  name: string;
  points: readonly (readonly [number, number | null])[];
}

export interface LineChartOptions {
  title: string;
  series: readonly ChartSeries[];
  xLabel?: string;
  yLabel?: string;
  /** Pixels. Defaults 480 x 260. */
  width?: number;
  height?: number;
}

export interface BarChartOptions {
  title: string;
  /** One group of bars per category (e.g. policies), one bar per series name in each. */
  categories: readonly string[];
  /** Each series' value per category (null: no bar). */
  series: readonly { name: string; values: readonly (number | null)[] }[];
  yLabel?: string;
  width?: number;
  height?: number;
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const margin = { left: 60, right: 16, top: 30, bottom: 44 };
const legendRowHeight = 16;
const charWidth = 6.5; // approximate width of an 11px sans-serif character, for legend layout

/**
 * An SVG line chart with axes, ticks, axis labels and a legend. Empty series (or only gaps) give a frame
 * that says "no data"; a single point or a constant series gets a padded axis and a marker.
 *
 * @example
 * const svg = lineChart({ title: 'SFT loss', xLabel: 'step', yLabel: 'nats', series: [{ name: 'train', points: [[0, 2.3], [10, 1.9]] }] });
 */
export function lineChart(options: LineChartOptions): string {
  const where = 'lineChart';
  requireOptions(options, where);
  requireText(options.title, 'title', where);
  requireArray(options.series, 'series', where);
  options.series.forEach((s, i) => requireSeries(s, i, where));
  const { xLabel = '', yLabel = '' } = options;
  requireText(xLabel, 'xLabel', where);
  requireText(yLabel, 'yLabel', where);
  const width = requireSize(options.width ?? 480, 'width', where);
  const height = requireSize(options.height ?? 260, 'height', where);

  // Each series as runs of finite points: a missing y ends a run (the gap stays visible).
  const runs = options.series.map((s) => {
    const out: [number, number][][] = [[]];
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x)) continue;
      if (y === null || !Number.isFinite(y)) {
        if (out[out.length - 1].length) out.push([]);
      } else out[out.length - 1].push([x, y]);
    }
    return out.filter((run) => run.length > 0);
  });
  const all = runs.flat(2);
  const legend = legendLayout(options.series.map((s) => s.name), width);
  const plot = plotArea(width, height);
  const parts = [svgOpen(width, height + legend.height, options.title), title(options.title, width)];
  if (all.length === 0) {
    parts.push(frame(plot), `<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h / 2}" text-anchor="middle" fill="#888">no data</text>`);
  } else {
    const xs = scale(all.map((p) => p[0]), plot.x, plot.x + plot.w);
    const ys = scale(all.map((p) => p[1]), plot.y + plot.h, plot.y);
    parts.push(grid(plot, xs, ys), frame(plot));
    runs.forEach((series, i) => {
      const color = palette[i % palette.length];
      for (const run of series) {
        const coords = run.map(([x, y]) => `${fmt(xs.map(x))},${fmt(ys.map(y))}`);
        if (run.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${coords.join(' ')}"/>`);
        // Markers where a line alone would not show the points: isolated points and short series.
        if (run.length === 1 || all.length <= 24)
          for (const c of coords) {
            const [cx, cy] = c.split(',');
            parts.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`);
          }
      }
    });
  }
  parts.push(axisLabels(plot, xLabel, yLabel), legend.render(plot.y + plot.h + margin.bottom - 6), '</svg>');
  return parts.join('');
}

/**
 * An SVG bar chart: one group per category, one bar per series, a zero line when values change sign,
 * and each bar's value written above (or below) it.
 *
 * @example
 * barChart({ title: 'score', categories: ['base', 'SFT'], series: [{ name: 'talaria', values: [-2.9, 1.06] }] });
 */
export function barChart(options: BarChartOptions): string {
  const where = 'barChart';
  requireOptions(options, where);
  requireText(options.title, 'title', where);
  requireArray(options.categories, 'categories', where);
  options.categories.forEach((c, i) => requireText(c, `categories[${i}]`, where));
  requireArray(options.series, 'series', where);
  options.series.forEach((s, i) => {
    if (typeof s !== 'object' || s === null) throw new TalariaError(`${where}: series[${i}] must be {name, values}, got ${describe(s)}`, 'ERR_TALARIA_DTYPE');
    requireText(s.name, `series[${i}].name`, where);
    requireArray(s.values, `series[${i}].values`, where);
    if (s.values.length !== options.categories.length)
      throw new TalariaError(`${where}: series[${i}].values must hold one value per category (${options.categories.length}), got ${s.values.length}`, 'ERR_TALARIA_SHAPE');
    s.values.forEach((v, j) => {
      if (v !== null && typeof v !== 'number') throw new TalariaError(`${where}: series[${i}].values[${j}] must be a number or null, got ${describe(v)}`, 'ERR_TALARIA_DTYPE');
    });
  });
  const yLabel = options.yLabel ?? '';
  requireText(yLabel, 'yLabel', where);
  const width = requireSize(options.width ?? 480, 'width', where);
  const height = requireSize(options.height ?? 240, 'height', where);

  const legend = legendLayout(options.series.map((s) => s.name), width);
  const plot = plotArea(width, height);
  const parts = [svgOpen(width, height + legend.height, options.title), title(options.title, width)];
  const values = options.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  if (values.length === 0 || options.categories.length === 0) {
    parts.push(frame(plot), `<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h / 2}" text-anchor="middle" fill="#888">no data</text>`);
  } else {
    const ys = scale([0, ...values], plot.y + plot.h, plot.y);
    const slot = plot.w / options.categories.length;
    const barWidth = (slot * 0.7) / Math.max(1, options.series.length);
    parts.push(grid(plot, null, ys), frame(plot));
    const zero = ys.map(0);
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${fmt(zero)}" y2="${fmt(zero)}" stroke="#444"/>`);
    options.categories.forEach((category, j) => {
      const left = plot.x + slot * j + slot * 0.15;
      options.series.forEach((s, i) => {
        const v = s.values[j];
        if (v === null || !Number.isFinite(v)) return;
        const y = ys.map(v);
        const x = left + i * barWidth;
        const top = Math.min(y, zero);
        parts.push(`<rect x="${fmt(x)}" y="${fmt(top)}" width="${fmt(barWidth * 0.92)}" height="${fmt(Math.max(0.5, Math.abs(y - zero)))}" fill="${palette[i % palette.length]}"/>`);
        const labelY = v >= 0 ? top - 3 : top + Math.abs(y - zero) + 11;
        parts.push(`<text x="${fmt(x + barWidth * 0.46)}" y="${fmt(labelY)}" text-anchor="middle" font-size="10">${escapeHtml(tickLabel(v, 0.01))}</text>`);
      });
      // Below the value labels of negative bars (which may reach ~12px under the frame).
      parts.push(`<text x="${fmt(plot.x + slot * (j + 0.5))}" y="${plot.y + plot.h + 26}" text-anchor="middle">${escapeHtml(category)}</text>`);
    });
  }
  parts.push(axisLabels(plot, '', yLabel), legend.render(plot.y + plot.h + margin.bottom - 6), '</svg>');
  return parts.join('');
}

// ---- internals ----

interface Plot {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Scale {
  map(v: number): number;
  ticks: number[];
  step: number;
}

function plotArea(width: number, height: number): Plot {
  return { x: margin.left, y: margin.top, w: Math.max(10, width - margin.left - margin.right), h: Math.max(10, height - margin.top - margin.bottom) };
}

/** A linear scale over the values' range, widened to nice tick steps (1, 2 or 5 × 10^k); a single value gets ±1 (or ±10%). */
function scale(values: number[], from: number, to: number): Scale {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let k = 0; start + k * step <= end + step * 1e-9; k++) ticks.push(start + k * step);
  return { map: (v) => from + ((v - start) / (end - start)) * (to - from), ticks, step };
}

function grid(plot: Plot, xs: Scale | null, ys: Scale): string {
  const parts: string[] = [];
  for (const t of ys.ticks) {
    const y = fmt(ys.map(t));
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${plot.x - 5}" y="${y}" dy="3.5" text-anchor="end">${escapeHtml(tickLabel(t, ys.step))}</text>`);
  }
  if (xs)
    for (const t of xs.ticks) {
      const x = fmt(xs.map(t));
      parts.push(`<line x1="${x}" x2="${x}" y1="${plot.y + plot.h}" y2="${plot.y + plot.h + 4}" stroke="#444"/>`);
      parts.push(`<text x="${x}" y="${plot.y + plot.h + 15}" text-anchor="middle">${escapeHtml(tickLabel(t, xs.step))}</text>`);
    }
  return parts.join('');
}

function frame(plot: Plot): string {
  return `<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="none" stroke="#444"/>`;
}

function axisLabels(plot: Plot, xLabel: string, yLabel: string): string {
  const parts: string[] = [];
  if (xLabel) parts.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 30}" text-anchor="middle" fill="#444">${escapeHtml(xLabel)}</text>`);
  if (yLabel) {
    const cy = plot.y + plot.h / 2;
    parts.push(`<text x="14" y="${cy}" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${cy})">${escapeHtml(yLabel)}</text>`);
  }
  return parts.join('');
}

/** Legend entries laid out left to right, wrapping to new rows; its height adds to the SVG's. */
function legendLayout(names: string[], width: number): { height: number; render: (top: number) => string } {
  const placed: { name: string; x: number; row: number }[] = [];
  let x = margin.left;
  let row = 0;
  for (const name of names) {
    const w = 22 + name.length * charWidth + 14;
    if (x + w > width - margin.right && x > margin.left) {
      row++;
      x = margin.left;
    }
    placed.push({ name, x, row });
    x += w;
  }
  const rows = names.length ? row + 1 : 0;
  return {
    height: rows * legendRowHeight,
    render: (top) =>
      placed
        .map(({ name, x: left, row: r }, i) => {
          const y = top + r * legendRowHeight + 8;
          const color = palette[i % palette.length];
          return `<line x1="${left}" x2="${left + 16}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="3"/><text x="${left + 21}" y="${y}" dy="3.5">${escapeHtml(name)}</text>`;
        })
        .join(''),
  };
}

function svgOpen(width: number, height: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(label)}" font-family="sans-serif" font-size="11">`;
}

function title(text: string, width: number): string {
  return `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${escapeHtml(text)}</text>`;
}

/** A tick value with as many decimals as its step needs; very large or small magnitudes in exponent form. */
function tickLabel(v: number, step: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-4) return v.toExponential(1);
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

function requireText(value: unknown, name: string, where: string): asserts value is string {
  if (typeof value !== 'string') throw new TalariaError(`${where}: ${name} must be a string, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
}

function requireSize(value: unknown, name: string, where: string): number {
  if (typeof value !== 'number') throw new TalariaError(`${where}: ${name} must be a number, got ${describe(value)}`, 'ERR_TALARIA_DTYPE');
  if (!Number.isFinite(value) || value < 100 || value > 4000)
    throw new TalariaError(`${where}: ${name} must be a number of pixels in [100, 4000], got ${value}`, 'ERR_TALARIA_RANGE');
  return value;
}

function requireSeries(series: unknown, index: number, where: string): asserts series is ChartSeries {
  const name = `series[${index}]`;
  if (typeof series !== 'object' || series === null) throw new TalariaError(`${where}: ${name} must be {name, points}, got ${describe(series)}`, 'ERR_TALARIA_DTYPE');
  const s = series as Partial<ChartSeries>;
  requireText(s.name, `${name}.name`, where);
  requireArray(s.points, `${name}.points`, where);
  s.points.forEach((p: unknown, j) => {
    const ok = Array.isArray(p) && p.length === 2 && typeof p[0] === 'number' && (p[1] === null || typeof p[1] === 'number');
    if (!ok) throw new TalariaError(`${where}: ${name}.points[${j}] must be [x: number, y: number | null], got ${describe(p)}`, 'ERR_TALARIA_DTYPE');
  });
}
