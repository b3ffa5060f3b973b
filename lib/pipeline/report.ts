// The pipeline's results: results.json's schema (PipelineResults), the console table printed at the end
// of `talaria pipeline`, and report.html: one self-contained page (inline CSS and SVG, no script, no
// external resource) with the training curves, the results table in the style of InstructGPT's
// Figure 1, the reward model's accuracy, timings and sample responses per policy.
import { TalariaError } from '../native.js';
import type { MetricsRecord } from '../train/metrics.js';
import { describe } from '../world/guards.js';
import { barChart, lineChart, type ChartSeries } from './charts.js';
import { POLICY_EVALUATION_FIELDS, type JudgedSample, type PolicyEvaluation, type RmAccuracy } from './evaluate.js';
import { requireArray } from './guards.js';
import { escapeHtml } from './html.js';

export { barChart, lineChart } from './charts.js';
export type { BarChartOptions, ChartSeries, LineChartOptions } from './charts.js';

/** The four policies the pipeline evaluates, in the table's order. */
export const POLICY_NAMES = ['base', 'sft', 'ppo', 'ppoPtx'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

const policyLabels: Record<PolicyName, string> = { base: 'base', sft: 'SFT', ppo: 'PPO', ppoPtx: 'PPO-ptx' };

/** results.json. */
export interface PipelineResults {
  /** The world's name. */
  world: string;
  seed: number;
  /** The policy's parameter count. */
  params: number;
  rmAccuracy: RmAccuracy;
  policies: Record<PolicyName, PolicyEvaluation>;
  /** Wall seconds per stage (e.g. pretrain, sft, rm-sampling, rm, ppo, ppo-ptx, eval). */
  seconds: Record<string, number>;
  /** Throughput per stage (or sub-stage, e.g. ppo-rollout). */
  tokensPerSecond: Record<string, number>;
  totalSeconds: number;
  /** The run's settings, shown as JSON. */
  config: unknown;
}

/** Numbers from another implementation to show next to ours (every field optional). */
export interface ReferenceNumbers {
  /** Who produced them, e.g. "PyTorch 1.13 reference (mean of seeds 0 and 1)". */
  label: string;
  policies?: Partial<Record<PolicyName, Partial<Record<string, number | null>>>>;
  rmAccuracy?: Partial<RmAccuracy>;
  seconds?: Record<string, number>;
  tokensPerSecond?: Record<string, number>;
  totalSeconds?: number;
  params?: number;
}

export interface ReportInput {
  /** The world's name (shown in the title). */
  world: string;
  results: PipelineResults;
  /** metrics.jsonl's records: stages pretrain, pretrain-eval, sft, sft-eval, rm, rm-eval, ppo, ppo-ptx. */
  metrics: readonly MetricsRecord[];
  /** A few judged samples per policy (judgeSamples(world, samples.slice(0, 8))). */
  samples: Partial<Record<PolicyName, readonly JudgedSample[]>>;
  reference?: ReferenceNumbers;
}

/**
 * notes/task-a.md's PyTorch reference for world A (mean of seeds 0 and 1; ranges as midpoints), to
 * pass as ReportInput.reference.
 */
export const pytorchReferenceA: ReferenceNumbers = {
  label: 'PyTorch 1.13 reference (2 CPU cores, 0.53M parameters; mean of seeds 0 and 1)',
  params: 530_000,
  policies: {
    base: { score: -2.9, winRateVsSft: 0.02, accuracy: 0.01, toxicRate: 0.182, rambleRate: 1.0, noEndRate: 1.0, klVsSft: 30.5, pretrainLoss: 1.051 },
    sft: { score: 1.06, winRateVsSft: 0.51, accuracy: 0.71, toxicRate: 0.092, rambleRate: 0.128, noEndRate: 0.035, klVsSft: 0, pretrainLoss: 1.972 },
    ppo: { score: 1.75, winRateVsSft: 0.64, accuracy: 0.84, toxicRate: 0.003, rambleRate: 0.028, noEndRate: 0.0, klVsSft: 0.72, pretrainLoss: 2.224 },
    ppoPtx: { score: 1.7, winRateVsSft: 0.64, accuracy: 0.83, toxicRate: 0.003, rambleRate: 0.033, noEndRate: 0.017, klVsSft: 0.81, pretrainLoss: 1.08 },
  },
  rmAccuracy: { noisy: 0.76, exact: 0.91 },
  seconds: { pretrain: 113, sft: 23, 'rm-sampling': 21.5, rm: 62.5, ppo: 38, 'ppo-ptx': 47.5, eval: 5.5 },
  tokensPerSecond: { pretrain: 22_000, sft: 11_300, rm: 11_300, 'ppo-rollout': 9_200, 'ppo-update': 21_700 },
  totalSeconds: 313.5,
};

// ---- the results table ----

interface Column {
  key: string;
  label: string;
  format: (v: number) => string;
}

const signed = (digits: number) => (v: number) => (v > 0 ? '+' : '') + v.toFixed(digits);
const fixed = (digits: number) => (v: number) => v.toFixed(digits);

/** "noEndRate" → "no end", "toxicRate" → "toxic", "accuracy" → "accuracy". */
function rateLabel(name: string): string {
  return name.replace(/Rate$/, '').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

/** The table's columns: score, win vs SFT, the world's rates (in the order the SFT row lists them), KL, PT loss. */
function columnsOf(results: PipelineResults): Column[] {
  const rates: string[] = [];
  for (const name of POLICY_NAMES)
    for (const key of Object.keys(results.policies[name])) if (!POLICY_EVALUATION_FIELDS.includes(key) && !rates.includes(key)) rates.push(key);
  return [
    { key: 'score', label: 'score', format: signed(2) },
    { key: 'winRateVsSft', label: 'win vs SFT', format: fixed(2) },
    ...rates.map((key) => ({ key, label: rateLabel(key), format: fixed(3) })),
    { key: 'klVsSft', label: 'KL vs SFT', format: fixed(2) },
    { key: 'pretrainLoss', label: 'held-out PT loss', format: fixed(3) },
  ];
}

const cell = (column: Column, value: unknown): string => (typeof value === 'number' && Number.isFinite(value) ? column.format(value) : '–');

/**
 * The results as an aligned Markdown table (one row per policy, the columns of notes/task-a.md), then
 * the RM accuracy and the total time: what `talaria pipeline` prints at the end.
 *
 * @example
 * console.log(formatResultsTable(JSON.parse(readFileSync('runs/a/results.json', 'utf8'))));
 */
export function formatResultsTable(results: PipelineResults): string {
  requireResults(results, 'results', 'formatResultsTable');
  const columns = columnsOf(results);
  const rows = [
    ['policy', ...columns.map((c) => c.label)],
    ...POLICY_NAMES.map((name) => [policyLabels[name], ...columns.map((c) => cell(c, results.policies[name][c.key]))]),
  ];
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  // Text left-aligned, numbers right-aligned (Markdown's ---: marks it too).
  const line = (r: string[]) => `| ${r.map((v, j) => (j === 0 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join(' | ')} |`;
  const rule = `|${widths.map((w, j) => (j === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const { noisy, exact } = results.rmAccuracy;
  return [
    line(rows[0]),
    rule,
    ...rows.slice(1).map(line),
    '',
    `RM accuracy (held out): ${noisy.toFixed(3)} against the noisy rankings, ${exact === null ? '–' : exact.toFixed(3)} against the exact scores`,
    `world ${results.world}, seed ${results.seed}, ${results.params.toLocaleString('en-US')} parameters, ${results.totalSeconds.toFixed(1)} s in total`,
  ].join('\n');
}

// ---- the HTML report ----

/** The report's curves: each chart's series are (stage, metric) pairs; the first metric name a record has is used. */
const curveCharts: { title: string; yLabel: string; xLabel: string; series: { stage: string; keys: string[] }[] }[] = [
  { title: 'Pretraining loss', yLabel: 'nats / token', xLabel: 'step', series: [{ stage: 'pretrain', keys: ['loss'] }, { stage: 'pretrain-eval', keys: ['loss'] }] },
  { title: 'SFT loss', yLabel: 'nats / token', xLabel: 'step', series: [{ stage: 'sft', keys: ['loss'] }, { stage: 'sft-eval', keys: ['loss'] }] },
  { title: 'Reward model accuracy', yLabel: 'pairwise accuracy', xLabel: 'step', series: [{ stage: 'rm', keys: ['accuracy', 'acc'] }, { stage: 'rm-eval', keys: ['accuracy', 'acc'] }] },
  { title: 'PPO reward', yLabel: 'mean reward', xLabel: 'iteration', series: [{ stage: 'ppo', keys: ['reward', 'rewardMean', 'score'] }, { stage: 'ppo-ptx', keys: ['reward', 'rewardMean', 'score'] }] },
  { title: 'PPO KL to SFT', yLabel: 'KL per response', xLabel: 'iteration', series: [{ stage: 'ppo', keys: ['kl', 'klMean', 'approxKl'] }, { stage: 'ppo-ptx', keys: ['kl', 'klMean', 'approxKl'] }] },
  { title: 'PPO clip fraction', yLabel: 'clipfrac', xLabel: 'iteration', series: [{ stage: 'ppo', keys: ['clipfrac', 'clipFrac', 'clipFraction'] }, { stage: 'ppo-ptx', keys: ['clipfrac', 'clipFrac', 'clipFraction'] }] },
];

/** The (step, value) points of `stage`'s records that carry one of `keys` (a null value is a gap). */
function curve(metrics: readonly MetricsRecord[], stage: string, keys: string[]): ChartSeries['points'] {
  const points: [number, number | null][] = [];
  for (const record of metrics) {
    if (record.stage !== stage) continue;
    const key = keys.find((k) => k in record);
    if (key === undefined) continue;
    const value = record[key];
    points.push([record.step, typeof value === 'number' ? value : null]);
  }
  return points;
}

const css = `
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1060px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.ref td{color:#777;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:8px}
pre,code{font-family:ui-monospace,monospace;font-size:12px}pre{background:#f7f7f7;padding:8px;overflow:auto}
.flag{display:inline-block;background:#fde2e1;border-radius:3px;padding:0 4px;margin-right:3px;font-size:11px}
.ok{background:#e0f3e0}.muted{color:#777}`;

/**
 * The whole report as one HTML string (write it to report.html). Every text from the run (responses,
 * prompts, names, config) is escaped; the page loads nothing and runs no script.
 *
 * @example
 * writeFileSync('runs/a/report.html', renderReport({ world: 'a', results, metrics: readMetrics('runs/a/metrics.jsonl'), samples, reference: pytorchReferenceA }));
 */
export function renderReport(input: ReportInput): string {
  const where = 'renderReport';
  if (typeof input !== 'object' || input === null) throw new TalariaError(`${where}: input must be a ReportInput object, got ${describe(input)}`, 'ERR_TALARIA_DTYPE');
  if (typeof input.world !== 'string') throw new TalariaError(`${where}: input.world must be a string, got ${describe(input.world)}`, 'ERR_TALARIA_DTYPE');
  requireResults(input.results, 'input.results', where);
  requireMetrics(input.metrics, where);
  requireSampleSets(input.samples, where);
  if (input.reference !== undefined) requireReference(input.reference, where);
  const { results, reference } = input;

  const sections = [
    `<h1>Talaria pipeline report: world ${escapeHtml(input.world)}</h1>`,
    `<p>Seed ${results.seed}, ${results.params.toLocaleString('en-US')} parameters${reference?.params ? ` <span class="muted">(reference: ${reference.params.toLocaleString('en-US')})</span>` : ''}, ${results.totalSeconds.toFixed(1)} s in total${reference?.totalSeconds ? ` <span class="muted">(reference: ${reference.totalSeconds.toFixed(1)} s)</span>` : ''}.</p>`,
    '<h2>Results</h2>',
    resultsTable(results, reference),
    `<div class="charts">${scoreChart(results, reference)}</div>`,
    '<h2>Reward model</h2>',
    rmTable(results.rmAccuracy, reference),
    '<h2>Training curves</h2>',
    `<div class="charts">${curveCharts
      .map((chart) => lineChart({
        title: chart.title,
        xLabel: chart.xLabel,
        yLabel: chart.yLabel,
        series: chart.series.map(({ stage, keys }) => ({ name: stage, points: curve(input.metrics, stage, keys) })).filter((s) => s.points.length > 0),
      }))
      .join('')}</div>`,
    '<h2>Time and throughput</h2>',
    timingTable(results, reference),
    '<h2>Sample responses</h2>',
    ...POLICY_NAMES.map((name) => samplesTable(name, input.samples[name] ?? [])),
    '<h2>Configuration</h2>',
    `<pre>${escapeHtml(configText(results.config))}</pre>`,
  ];
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Talaria pipeline report: world ${escapeHtml(input.world)}</title><style>${css}</style></head><body>\n${sections.join('\n')}\n</body></html>\n`;
}

/** The run's config as indented JSON; a value JSON cannot hold (a BigInt, a cycle) is reported, not thrown. */
function configText(config: unknown): string {
  try {
    return JSON.stringify(config ?? null, null, 2) ?? 'null';
  } catch (err) {
    return `(config is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)})`;
  }
}

function resultsTable(results: PipelineResults, reference: ReferenceNumbers | undefined): string {
  const columns = columnsOf(results);
  const head = `<tr><th>policy</th>${columns.map((c) => `<th>${escapeHtml(c.label)}</th>`).join('')}</tr>`;
  const rows = POLICY_NAMES.flatMap((name) => {
    const ours = `<tr><td>${policyLabels[name]}</td>${columns.map((c) => `<td class="n">${cell(c, results.policies[name][c.key])}</td>`).join('')}</tr>`;
    const ref = reference?.policies?.[name];
    return ref ? [ours, `<tr class="ref"><td>${policyLabels[name]} (reference)</td>${columns.map((c) => `<td class="n">${cell(c, ref[c.key])}</td>`).join('')}</tr>`] : [ours];
  });
  const note = reference ? `<p class="muted">Italic rows: ${escapeHtml(reference.label)}.</p>` : '';
  return `<table>${head}${rows.join('')}</table>${note}`;
}

function scoreChart(results: PipelineResults, reference: ReferenceNumbers | undefined): string {
  const series = [{ name: 'this run', values: POLICY_NAMES.map((name) => results.policies[name].score) }];
  if (reference?.policies) series.push({ name: 'reference', values: POLICY_NAMES.map((name) => reference.policies?.[name]?.score ?? null) as number[] });
  return barChart({ title: 'Mean labeler score per policy', categories: POLICY_NAMES.map((n) => policyLabels[n]), series, yLabel: 'score' });
}

function rmTable(rm: RmAccuracy, reference: ReferenceNumbers | undefined): string {
  const f = (v: number | null | undefined) => (typeof v === 'number' ? v.toFixed(3) : '–');
  const refRow = reference?.rmAccuracy ? `<tr class="ref"><td>reference</td><td class="n">${f(reference.rmAccuracy.noisy)}</td><td class="n">${f(reference.rmAccuracy.exact)}</td></tr>` : '';
  return `<table><tr><th></th><th>vs noisy rankings</th><th>vs exact scores</th></tr><tr><td>held-out pairwise accuracy</td><td class="n">${f(rm.noisy)}</td><td class="n">${f(rm.exact)}</td></tr>${refRow}</table>`;
}

function timingTable(results: PipelineResults, reference: ReferenceNumbers | undefined): string {
  const stages = [...new Set([...Object.keys(results.seconds), ...Object.keys(results.tokensPerSecond), ...Object.keys(reference?.seconds ?? {}), ...Object.keys(reference?.tokensPerSecond ?? {})])];
  const f = (v: number | undefined, digits: number) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
  const refHead = reference ? '<th>reference s</th><th>reference tokens/s</th>' : '';
  const rows = stages.map((stage) => {
    const ref = reference ? `<td class="n">${f(reference.seconds?.[stage], 1)}</td><td class="n">${f(reference.tokensPerSecond?.[stage], 0)}</td>` : '';
    return `<tr><td>${escapeHtml(stage)}</td><td class="n">${f(results.seconds[stage], 1)}</td><td class="n">${f(results.tokensPerSecond[stage], 0)}</td>${ref}</tr>`;
  });
  const total = `<tr><td><b>total</b></td><td class="n">${f(results.totalSeconds, 1)}</td><td></td>${reference ? `<td class="n">${f(reference.totalSeconds, 1)}</td><td></td>` : ''}</tr>`;
  return `<table><tr><th>stage</th><th>seconds</th><th>tokens/s</th>${refHead}</tr>${rows.join('')}${total}</table>`;
}

function samplesTable(policy: PolicyName, samples: readonly JudgedSample[]): string {
  const heading = `<h3>${policyLabels[policy]}</h3>`;
  if (samples.length === 0) return `${heading}<p class="muted">No samples.</p>`;
  const rows = samples.map((s) => {
    const flags = Object.entries(s.flags).filter(([, on]) => on).map(([flag]) => `<span class="flag${flag === 'correct' ? ' ok' : ''}">${escapeHtml(flag)}</span>`);
    const response = `<code>${escapeHtml(JSON.stringify(s.response))}</code>${s.ended ? ' <span class="muted">⏎EOS</span>' : ''}`;
    return `<tr><td><code>${escapeHtml(s.prompt)}</code></td><td><code>${escapeHtml(s.answer)}</code></td><td>${response}</td><td class="n">${signed(2)(s.score)}</td><td>${flags.join('')}</td></tr>`;
  });
  return `${heading}<table><tr><th>prompt</th><th>answer</th><th>response</th><th>score</th><th>flags</th></tr>${rows.join('')}</table>`;
}

// ---- input checks ----

function fail(where: string, name: string, expected: string, got: unknown): TalariaError {
  return new TalariaError(`${where}: ${name} must be ${expected}, got ${describe(got)}`, 'ERR_TALARIA_DTYPE');
}

function requireNumberRecord(value: unknown, name: string, where: string, nullable = false): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(where, name, 'an object of numbers', value);
  for (const [key, v] of Object.entries(value))
    if (typeof v !== 'number' && !(nullable && v === null)) throw fail(where, `${name}.${key}`, nullable ? 'a number or null' : 'a number', v);
}

/** results.json's shape: every field PipelineResults declares, with the right types. */
function requireResults(results: unknown, name: string, where: string): asserts results is PipelineResults {
  if (typeof results !== 'object' || results === null) throw fail(where, name, 'a PipelineResults object', results);
  const r = results as Partial<PipelineResults>;
  if (typeof r.world !== 'string') throw fail(where, `${name}.world`, 'a string', r.world);
  for (const key of ['seed', 'params', 'totalSeconds'] as const) if (typeof r[key] !== 'number') throw fail(where, `${name}.${key}`, 'a number', r[key]);
  const rm = r.rmAccuracy;
  if (typeof rm !== 'object' || rm === null) throw fail(where, `${name}.rmAccuracy`, 'an object {noisy, exact}', rm);
  if (typeof rm.noisy !== 'number') throw fail(where, `${name}.rmAccuracy.noisy`, 'a number', rm.noisy);
  if (rm.exact !== null && typeof rm.exact !== 'number') throw fail(where, `${name}.rmAccuracy.exact`, 'a number or null', rm.exact);
  if (typeof r.policies !== 'object' || r.policies === null) throw fail(where, `${name}.policies`, `an object with ${POLICY_NAMES.join(', ')}`, r.policies);
  for (const policy of POLICY_NAMES) {
    const p = r.policies[policy];
    const at = `${name}.policies.${policy}`;
    if (typeof p !== 'object' || p === null) throw fail(where, at, 'a PolicyEvaluation object', p);
    if (typeof p.score !== 'number') throw fail(where, `${at}.score`, 'a number', p.score);
    for (const [key, v] of Object.entries(p)) if (v !== null && typeof v !== 'number') throw fail(where, `${at}.${key}`, 'a number or null', v);
  }
  requireNumberRecord(r.seconds, `${name}.seconds`, where);
  requireNumberRecord(r.tokensPerSecond, `${name}.tokensPerSecond`, where);
}

function requireMetrics(metrics: unknown, where: string): void {
  requireArray(metrics, 'input.metrics', where);
  metrics.forEach((m: unknown, i) => {
    const record = m as Partial<MetricsRecord> | null;
    if (typeof record !== 'object' || record === null || typeof record.stage !== 'string' || typeof record.step !== 'number')
      throw fail(where, `input.metrics[${i}]`, 'a metrics record {stage: string, step: number, ...}', m);
  });
}

function requireSampleSets(samples: unknown, where: string): void {
  if (typeof samples !== 'object' || samples === null || Array.isArray(samples)) throw fail(where, 'input.samples', 'an object of policy → judged samples', samples);
  for (const [policy, list] of Object.entries(samples)) {
    if (!(POLICY_NAMES as readonly string[]).includes(policy))
      throw new TalariaError(`${where}: input.samples.${policy} is not a policy (expected ${POLICY_NAMES.join(', ')})`, 'ERR_TALARIA_RANGE');
    requireArray(list, `input.samples.${policy}`, where);
    list.forEach((s: unknown, i) => {
      const x = s as Partial<JudgedSample> | null;
      const ok = typeof x === 'object' && x !== null && typeof x.prompt === 'string' && typeof x.answer === 'string' && typeof x.response === 'string'
        && typeof x.ended === 'boolean' && typeof x.score === 'number' && typeof x.flags === 'object' && x.flags !== null;
      if (!ok) throw fail(where, `input.samples.${policy}[${i}]`, 'a judged sample {prompt, answer, response, ended, score, flags}', s);
    });
  }
}

function requireReference(reference: unknown, where: string): void {
  const r = reference as Partial<ReferenceNumbers> | null;
  if (typeof r !== 'object' || r === null) throw fail(where, 'input.reference', 'a ReferenceNumbers object', reference);
  if (typeof r.label !== 'string') throw fail(where, 'input.reference.label', 'a string', r.label);
  for (const key of ['params', 'totalSeconds'] as const) if (r[key] !== undefined && typeof r[key] !== 'number') throw fail(where, `input.reference.${key}`, 'a number', r[key]);
  for (const key of ['seconds', 'tokensPerSecond'] as const) if (r[key] !== undefined) requireNumberRecord(r[key], `input.reference.${key}`, where);
  if (r.rmAccuracy !== undefined) requireNumberRecord(r.rmAccuracy, 'input.reference.rmAccuracy', where, true);
  if (r.policies !== undefined) {
    if (typeof r.policies !== 'object' || r.policies === null) throw fail(where, 'input.reference.policies', 'an object of policy → numbers', r.policies);
    for (const [policy, row] of Object.entries(r.policies)) requireNumberRecord(row, `input.reference.policies.${policy}`, where, true);
  }
}
