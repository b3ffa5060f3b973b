// The pipeline's report (lib/pipeline/report.ts, charts.ts): the console table, the self-contained HTML
// page (well-formed, escaped, no external resource, the table's values present) and the SVG charts on
// awkward data (no points, one point, NaN and null gaps, constant series).
import { describe, expect, it } from 'vitest';
import type { MetricsRecord } from '../lib/train/metrics.js';
import { judgeSamples, type PolicyEvaluation } from '../lib/pipeline/evaluate.js';
import {
  barChart, formatResultsTable, lineChart, POLICY_NAMES, pytorchReferenceA, renderReport, type PipelineResults, type ReportInput,
} from '../lib/pipeline/report.js';
import { Rng } from '../lib/util/rng.js';
import { worldA } from '../lib/world/task-a.js';
import { expectThrows } from './helpers/assert.js';

const DTYPE = 'ERR_TALARIA_DTYPE';
const RANGE = 'ERR_TALARIA_RANGE';
const SHAPE = 'ERR_TALARIA_SHAPE';

const VOID_ELEMENTS = new Set(['meta', 'br', 'hr', 'img', 'input', 'link']);

/**
 * Checks that every element is closed in order (a stack of open tags, scanned character by character)
 * and returns the tag names seen. Throws on a stray '<', an unclosed tag or a mismatched close.
 */
function checkWellFormed(html: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  let i = 0;
  while (i < html.length) {
    const open = html.indexOf('<', i);
    if (open < 0) break;
    const close = html.indexOf('>', open);
    if (close < 0) throw new Error(`unterminated tag at ${open}`);
    const inner = html.slice(open + 1, close);
    i = close + 1;
    if (inner.startsWith('!')) continue; // <!DOCTYPE html>
    if (inner.includes('<')) throw new Error(`'<' inside a tag at ${open}: ${inner.slice(0, 40)}`);
    if (inner.startsWith('/')) {
      const name = inner.slice(1).trim();
      const top = stack.pop();
      if (top !== name) throw new Error(`</${name}> closes <${top}> at ${open}`);
      continue;
    }
    let end = 0;
    while (end < inner.length && inner[end] !== ' ' && inner[end] !== '/' && inner[end] !== '\n') end++;
    const name = inner.slice(0, end);
    if (name === '' || !/^[a-zA-Z][a-zA-Z0-9]*$/.test(name)) throw new Error(`bad tag name at ${open}: ${inner.slice(0, 40)}`);
    seen.push(name);
    const quotes = [...inner].filter((c) => c === '"').length;
    if (quotes % 2) throw new Error(`unbalanced quotes in <${name}> at ${open}`);
    if (!inner.endsWith('/') && !VOID_ELEMENTS.has(name)) stack.push(name);
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(' > ')}`);
  return seen;
}

function withoutSvgNamespace(html: string): string {
  return html.split('xmlns="http://www.w3.org/2000/svg"').join('');
}

/** Every number in the SVG's coordinate attributes is finite and inside its viewBox (with a little slack). */
function expectCoordinatesInside(svg: string): void {
  const [, , , w, h] = /viewBox="(\S+) (\S+) (\S+) (\S+)"/.exec(svg)!.map(Number);
  expect(svg).not.toContain('NaN');
  expect(svg).not.toContain('Infinity');
  for (const [, attr, value] of svg.matchAll(/ (x|x1|x2|cx|y|y1|y2|cy)="([^"]+)"/g)) {
    const v = Number(value);
    expect(Number.isFinite(v), `${attr}="${value}"`).toBe(true);
    expect(v).toBeGreaterThanOrEqual(-1);
    expect(v).toBeLessThanOrEqual((attr.startsWith('x') || attr === 'cx' ? w : h) + 1);
  }
  for (const [, points] of svg.matchAll(/points="([^"]+)"/g))
    for (const pair of points.split(' ')) {
      const [x, y] = pair.split(',').map(Number);
      expect(x >= 0 && x <= w && y >= 0 && y <= h, pair).toBe(true);
    }
}

const row = (score: number, win: number | null, rates: number[], kl: number | null, pt: number | null): PolicyEvaluation => ({
  score, winRateVsSft: win, klVsSft: kl, pretrainLoss: pt,
  accuracy: rates[0], toxicRate: rates[1], rambleRate: rates[2], noEndRate: rates[3],
});

const results: PipelineResults = {
  world: 'a',
  seed: 7,
  params: 531_296,
  rmAccuracy: { noisy: 0.7634, exact: 0.9121 },
  policies: {
    base: row(-2.8917, 0.0183, [0.0117, 0.1833, 1, 1], 29.87, 1.0478),
    sft: row(1.0712, 0.5, [0.7133, 0.0917, 0.1283, 0.035], 0, 1.9644),
    ppo: row(1.7491, 0.6383, [0.8433, 0.0033, 0.0283, 0], 0.7219, 2.2211),
    ppoPtx: row(1.7012, 0.6417, [0.83, 0.0033, 0.0333, 0.0167], 0.8077, null),
  },
  seconds: { pretrain: 110.2, sft: 23.4, rm: 60.1, ppo: 37.7, 'ppo-ptx': 46.9, eval: 5.2 },
  tokensPerSecond: { pretrain: 22_105, sft: 11_422, rm: 11_034 },
  totalSeconds: 301.7,
  config: { pretrainSteps: 1200, note: '<b>bold</b> & "quoted"' },
};

function metricsRecords(): MetricsRecord[] {
  const rng = new Rng(3);
  const records: MetricsRecord[] = [];
  for (let step = 0; step <= 60; step += 5) records.push({ stage: 'pretrain', step, time: step, loss: 4 * Math.exp(-step / 20) + rng.uniform() * 0.1 });
  records.push({ stage: 'pretrain-eval', step: 60, time: 61, loss: 1.2 });
  for (let step = 0; step < 20; step++) records.push({ stage: 'sft', step, time: step, loss: step === 7 ? null : 2 - step * 0.05 });
  for (let step = 0; step < 10; step++) records.push({ stage: 'rm', step, time: step, accuracy: 0.5 + step * 0.03 });
  for (let it = 0; it < 8; it++) {
    records.push({ stage: 'ppo', step: it, time: it, reward: it * 0.2, kl: it * 0.05, clipfrac: 0.1 });
    records.push({ stage: 'ppo-ptx', step: it, time: it, reward: it * 0.19, kl: it * 0.06, clipfrac: 0.12 });
  }
  return records;
}

function reportInput(): ReportInput {
  const judged = judgeSamples(worldA, [
    { prompt: 'rev abc>', answer: 'cba', response: 'cba', ended: true },
    { prompt: 'up ab>', answer: 'AB', response: '<script>alert("x")</script>', ended: false },
    { prompt: 'cp a&b>', answer: 'ab', response: 'a@b ok', ended: true },
  ]);
  return { world: 'a', results, metrics: metricsRecords(), samples: { base: judged.slice(1), sft: judged, ppo: judged.slice(0, 1) }, reference: pytorchReferenceA };
}

describe('formatResultsTable', () => {
  it('prints an aligned Markdown table with every policy and value, then the RM accuracy', () => {
    const text = formatResultsTable(results);
    const lines = text.split('\n');
    const table = lines.slice(0, 6);
    expect(table[0]).toMatch(/^\| policy +\| score \| win vs SFT \| accuracy \| toxic \| ramble \| no end \| KL vs SFT \| held-out PT loss \|$/);
    expect(new Set(table.map((l) => l.length)).size).toBe(1);
    expect(table[2]).toContain('| base ');
    expect(table[2]).toContain('-2.89');
    expect(table[3]).toContain('+1.07');
    expect(table[3]).toContain('0.713');
    expect(table[4]).toContain('0.64');
    expect(table[5].startsWith('| PPO-ptx')).toBe(true);
    expect(table[5].trimEnd().endsWith('– |')).toBe(true); // no PT loss measured
    expect(text).toContain('0.763 against the noisy rankings, 0.912 against the exact scores');
    expect(text).toContain('531,296 parameters');
  });

  it('takes the rate columns from the world (a custom world\'s flags)', () => {
    const custom = structuredClone(results);
    for (const name of POLICY_NAMES) {
      const p = custom.policies[name];
      for (const k of ['accuracy', 'toxicRate', 'rambleRate', 'noEndRate']) delete p[k];
      p.offTopicRate = 0.25;
    }
    custom.rmAccuracy.exact = null;
    const text = formatResultsTable(custom);
    expect(text.split('\n')[0]).toContain('| off topic |');
    expect(text).not.toContain('accuracy |');
    expect(text).toContain('– against the exact scores');
  });

  it('rejects bad results', () => {
    expectThrows(() => formatResultsTable(null as never), DTYPE, 'results');
    expectThrows(() => formatResultsTable({ ...results, world: 1 } as never), DTYPE, 'results.world');
    expectThrows(() => formatResultsTable({ ...results, seed: '7' } as never), DTYPE, 'results.seed');
    expectThrows(() => formatResultsTable({ ...results, rmAccuracy: { noisy: 0.5 } } as never), DTYPE, 'rmAccuracy.exact');
    expectThrows(() => formatResultsTable({ ...results, policies: { ...results.policies, ppoPtx: undefined } } as never), DTYPE, 'policies.ppoPtx');
    expectThrows(() => formatResultsTable({ ...results, policies: { ...results.policies, sft: { ...results.policies.sft, accuracy: '0.7' } } } as never), DTYPE, 'policies.sft.accuracy');
    expectThrows(() => formatResultsTable({ ...results, seconds: { sft: 'slow' } } as never), DTYPE, 'seconds.sft');
    expectThrows(() => formatResultsTable({ ...results, tokensPerSecond: [] } as never), DTYPE, 'tokensPerSecond');
  });
});

describe('renderReport', () => {
  const html = renderReport(reportInput());

  it('is one well-formed, self-contained HTML page with no script and no external resource', () => {
    const tags = checkWellFormed(html);
    expect(tags).toContain('svg');
    expect(tags).not.toContain('script');
    expect(tags).not.toContain('link');
    expect(tags).not.toContain('img');
    const rest = withoutSvgNamespace(html);
    expect(rest).not.toContain('http://');
    expect(rest).not.toContain('https://');
    expect(rest).not.toContain('url(');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  });

  it('escapes every text from the run', () => {
    expect(html).not.toContain('<script');
    // Responses are shown JSON-quoted (so spaces and escapes are visible), then HTML-escaped.
    expect(html).toContain('&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;');
    expect(html).toContain('cp a&amp;b&gt;');
    expect(html).not.toContain('<b>bold</b>');
    expect(html).toContain('&lt;b&gt;bold&lt;/b&gt; &amp; \\&quot;quoted\\&quot;');
  });

  it('shows the table values, the reference, the RM accuracy, timings and the samples', () => {
    for (const text of ['+1.07', '-2.89', '0.64', '0.713', '0.092', '29.87', '1.964', 'PPO-ptx', 'win vs SFT', 'held-out PT loss', 'no end'])
      expect(html, text).toContain(`>${text}<`);
    expect(html).toContain('PPO (reference)');
    expect(html).toContain('>+1.75<'); // the reference's PPO score
    expect(html).toContain('>0.763<');
    expect(html).toContain('>0.912<');
    expect(html).toContain('>0.910<');
    expect(html).toContain('22,105');
    expect(html).toContain('>301.7<');
    expect(html).toContain('531,296 parameters');
    expect(html).toContain('&quot;cba&quot;');
    expect(html).toContain('class="flag">toxic<');
    expect(html).toContain('No samples.'); // PPO-ptx has none
    for (const title of ['Pretraining loss', 'SFT loss', 'Reward model accuracy', 'PPO reward', 'PPO KL to SFT', 'PPO clip fraction', 'Mean labeler score per policy'])
      expect(html).toContain(`>${title}<`);
    expect(html).toContain('>ppo-ptx<'); // overlaid in the PPO charts' legends
    expect(html).toContain('>pretrain-eval<');
  });

  it('renders with no metrics, no samples and no reference', () => {
    const bare = renderReport({ world: 'x<y', results, metrics: [], samples: {} });
    checkWellFormed(bare);
    expect(bare.split('no data').length - 1).toBe(6);
    expect(bare).toContain('world x&lt;y');
    expect(bare).not.toContain('reference');
  });

  it('shows a config JSON cannot hold instead of throwing', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const page = renderReport({ world: 'a', results: { ...results, config: cyclic }, metrics: [], samples: {} });
    expect(page).toContain('config is not JSON-serialisable');
  });

  it('rejects bad input', () => {
    const good = reportInput();
    expectThrows(() => renderReport(undefined as never), DTYPE, 'input');
    expectThrows(() => renderReport({ ...good, world: null } as never), DTYPE, 'input.world');
    expectThrows(() => renderReport({ ...good, results: { ...results, totalSeconds: null } } as never), DTYPE, 'input.results.totalSeconds');
    expectThrows(() => renderReport({ ...good, metrics: {} } as never), DTYPE, 'input.metrics');
    expectThrows(() => renderReport({ ...good, metrics: [{ stage: 'sft' }] } as never), DTYPE, 'input.metrics[0]');
    expectThrows(() => renderReport({ ...good, samples: [] } as never), DTYPE, 'input.samples');
    expectThrows(() => renderReport({ ...good, samples: { rlhf: [] } } as never), RANGE, 'input.samples.rlhf');
    expectThrows(() => renderReport({ ...good, samples: { sft: 'x' } } as never), DTYPE, 'input.samples.sft');
    expectThrows(() => renderReport({ ...good, samples: { sft: [{ prompt: 'a' }] } } as never), DTYPE, 'input.samples.sft[0]');
    expectThrows(() => renderReport({ ...good, reference: 3 } as never), DTYPE, 'input.reference');
    expectThrows(() => renderReport({ ...good, reference: { policies: {} } } as never), DTYPE, 'input.reference.label');
    expectThrows(() => renderReport({ ...good, reference: { label: 'r', seconds: { sft: '1' } } } as never), DTYPE, 'input.reference.seconds.sft');
    expectThrows(() => renderReport({ ...good, reference: { label: 'r', rmAccuracy: 0.7 } } as never), DTYPE, 'input.reference.rmAccuracy');
    expectThrows(() => renderReport({ ...good, reference: { label: 'r', policies: { sft: { score: 'high' } } } } as never), DTYPE, 'input.reference.policies.sft.score');
    expectThrows(() => renderReport({ ...good, reference: { label: 'r', totalSeconds: '9' } } as never), DTYPE, 'input.reference.totalSeconds');
  });
});

describe('lineChart', () => {
  const chart = (series: { name: string; points: [number, number | null][] }[]) => {
    const svg = lineChart({ title: 'loss <train>', xLabel: 'step', yLabel: 'nats', series });
    checkWellFormed(svg);
    expectCoordinatesInside(svg);
    return svg;
  };
  const count = (svg: string, what: string) => svg.split(what).length - 1;

  it('draws axes, ticks, labels and a legend entry per series', () => {
    const rng = new Rng(5);
    const svg = chart([
      { name: 'train', points: Array.from({ length: 50 }, (_, i) => [i * 10, 3 - Math.log1p(i) * 0.5 + rng.uniform() * 0.1] as [number, number]) },
      { name: 'eval', points: [[0, 3.1], [250, 1.9], [490, 1.6]] },
    ]);
    expect(count(svg, '<polyline')).toBe(2);
    expect(svg).toContain('>train<');
    expect(svg).toContain('>eval<');
    expect(svg).toContain('>step<');
    expect(svg).toContain('>nats<');
    expect(svg).toContain('loss &lt;train&gt;');
    expect(count(svg, 'text-anchor="end"')).toBeGreaterThanOrEqual(3); // y ticks
    expect(svg).toContain('>500<'); // the x axis reaches a nice tick past the last step
  });

  it('says "no data" for no series, empty series, or only gaps', () => {
    for (const series of [[], [{ name: 'a', points: [] }], [{ name: 'a', points: [[1, null], [2, NaN]] as [number, number | null][] }]]) {
      const svg = chart(series);
      expect(svg).toContain('no data');
      expect(svg).not.toContain('<polyline');
    }
  });

  it('marks a single point and pads a constant series\' axis', () => {
    const one = chart([{ name: 'only', points: [[3, 0.25]] }]);
    expect(count(one, '<circle')).toBe(1);
    expect(one).not.toContain('<polyline');
    const flat = chart([{ name: 'flat', points: [[0, 2], [1, 2], [2, 2]] }]);
    expect(count(flat, '<polyline')).toBe(1);
    expect(flat).toContain('>2.0<'); // the constant's value is a tick, with ±10% around it
    const zero = chart([{ name: 'zero', points: [[0, 0], [5, 0]] }]);
    expect(zero).toContain('>0<');
  });

  it('breaks the line at NaN and null values and skips non-finite x', () => {
    const svg = chart([{ name: 'gappy', points: [[0, 1], [1, 2], [2, NaN], [3, 3], [4, 4], [5, null], [6, 2], [Infinity, 1], [NaN, 5]] }]);
    expect(count(svg, '<polyline')).toBe(2);
    expect(count(svg, '<circle')).toBe(5);
  });

  it('rejects bad options', () => {
    const ok = { title: 't', series: [] };
    expectThrows(() => lineChart(null as never), DTYPE, 'options');
    expectThrows(() => lineChart({ ...ok, title: 3 } as never), DTYPE, 'title');
    expectThrows(() => lineChart({ ...ok, series: 'a' } as never), DTYPE, 'series');
    expectThrows(() => lineChart({ ...ok, series: [null] } as never), DTYPE, 'series[0]');
    expectThrows(() => lineChart({ ...ok, series: [{ name: 1, points: [] }] } as never), DTYPE, 'series[0].name');
    expectThrows(() => lineChart({ ...ok, series: [{ name: 'a', points: {} }] } as never), DTYPE, 'series[0].points');
    expectThrows(() => lineChart({ ...ok, series: [{ name: 'a', points: [[1, 2, 3]] }] } as never), DTYPE, 'series[0].points[0]');
    expectThrows(() => lineChart({ ...ok, series: [{ name: 'a', points: [['1', 2]] }] } as never), DTYPE, 'series[0].points[0]');
    expectThrows(() => lineChart({ ...ok, xLabel: 5 } as never), DTYPE, 'xLabel');
    expectThrows(() => lineChart({ ...ok, yLabel: [] } as never), DTYPE, 'yLabel');
    expectThrows(() => lineChart({ ...ok, width: 10 }), RANGE, 'width');
    expectThrows(() => lineChart({ ...ok, height: '200' } as never), DTYPE, 'height');
  });
});

describe('barChart', () => {
  it('draws one bar per finite value, below the zero line for negatives', () => {
    const svg = barChart({ title: 'score', categories: ['base', 'SFT', 'PPO'], series: [{ name: 'run', values: [-2.9, 1.06, 1.75] }, { name: 'ref', values: [-2.5, null, NaN] }] });
    checkWellFormed(svg);
    expectCoordinatesInside(svg);
    expect(svg.split('<rect').length - 1).toBe(1 + 4); // the frame and four bars
    expect(svg).toContain('>-2.90<');
    expect(svg).toContain('>1.75<');
    expect(barChart({ title: 'e', categories: [], series: [] })).toContain('no data');
  });

  it('rejects bad options', () => {
    const ok = { title: 't', categories: ['a'], series: [{ name: 's', values: [1] }] };
    expectThrows(() => barChart('x' as never), DTYPE, 'options');
    expectThrows(() => barChart({ ...ok, title: null } as never), DTYPE, 'title');
    expectThrows(() => barChart({ ...ok, categories: 'a' } as never), DTYPE, 'categories');
    expectThrows(() => barChart({ ...ok, categories: [1] } as never), DTYPE, 'categories[0]');
    expectThrows(() => barChart({ ...ok, series: {} } as never), DTYPE, 'series');
    expectThrows(() => barChart({ ...ok, series: [3] } as never), DTYPE, 'series[0]');
    expectThrows(() => barChart({ ...ok, series: [{ name: 's', values: [1, 2] }] }), SHAPE, 'series[0].values');
    expectThrows(() => barChart({ ...ok, series: [{ name: 's', values: ['1'] }] } as never), DTYPE, 'series[0].values[0]');
    expectThrows(() => barChart({ ...ok, series: [{ values: [1] }] } as never), DTYPE, 'series[0].name');
    expectThrows(() => barChart({ ...ok, yLabel: 1 } as never), DTYPE, 'yLabel');
    expectThrows(() => barChart({ ...ok, width: 1e6 }), RANGE, 'width');
  });
});
