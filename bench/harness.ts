// The bench harness: command-line options, suite definitions, timing with benchmark.js, and the report
// (an aligned table on stdout, and the JSON array that DESIGN.md "Benchmarks" specifies).
//
// A suite is a name plus a function that builds its cases for the selected backends. A case is one
// call to time (`run`), the bytes it must move (for GB/s and the bandwidth roofline), optionally its
// FLOPs, and optionally a baseline (the plain-TypeScript version) that is timed the same way. Cases
// that share one baseline object time it once.
//
// Time is the MEDIAN of benchmark.js's sample (seconds per call, one entry per timed cycle): the
// median ignores the odd cycle that a GC pause or another process stretched.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import Benchmark from 'benchmark';

export interface BenchOptions {
  filter: string | null;   // substring of "suite/case"
  json: string | null;     // file to write the JSON report to
  quick: boolean;          // fewer repetitions, for a CI smoke run
  backend: string;         // 'cpu' | 'cuda' | 'all'
}

export interface Baseline {
  name: string;
  run: () => void;
}

export interface BenchCase {
  name: string;
  params: Record<string, number | string>;
  backend: string;
  bytes?: number;   // bytes the call must move at least (compulsory traffic)
  flops?: number;
  run: () => void;
  baseline?: Baseline;
}

export interface Suite {
  name: string;
  cases: (backends: string[]) => BenchCase[];
  /** Lines printed under the table, given this suite's results (anchors, what the baseline is). */
  footer?: (results: CaseResult[]) => string[];
}

/** One row of the report; this is exactly the JSON object DESIGN.md asks for. */
export interface CaseResult {
  suite: string;
  case: string;
  backend: string;
  params: Record<string, number | string>;
  ms: number;
  gbps: number | null;
  gflops: number | null;
  rooflineFraction: number | null;
  baseline: { name: string; ms: number } | null;
}

/**
 * Measured peaks of this machine, per backend, that rooflineFraction is taken against: a case that
 * counts FLOPs is a fraction of the FMA peak (compute roof), any other of the STREAM bandwidth.
 */
export interface Roofline {
  gbps: Map<string, number>;     // STREAM-triad bandwidth
  gflops: Map<string, number>;   // FMA-throughput peak
}

export function defineSuite(suite: Suite): Suite {
  return suite;
}

export const USAGE = 'usage: npm run bench -- [--filter <substring>] [--json <file>] [--quick] [--backend cpu|cuda|all]';

export function parseBenchOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      filter: { type: 'string' },
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'all' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  return { filter: values.filter ?? null, json: values.json ?? null, quick: values.quick, backend: values.backend };
}

/** The backends to run: every available one for 'all', else the one asked for, if it is available. */
export function selectBackends(requested: string, available: string[]): string[] {
  if (requested === 'all') return available;
  if (!available.includes(requested)) {
    throw new Error(`--backend ${requested} is not available here; info().backends is [${available.join(', ')}]`);
  }
  return [requested];
}

// The device string a backend's tensors live on ('cuda-emu' runs on 'cuda:0' too): the tests' own mapping.
export { deviceOf } from '../test/helpers/backends.js';

export function matchesFilter(filter: string | null, suite: string, caseName: string): boolean {
  return filter === null || `${suite}/${caseName}`.includes(filter);
}

export function runSuites(suites: Suite[], backends: string[], options: BenchOptions, roofline: Roofline): CaseResult[] {
  const results: CaseResult[] = [];
  const baselineMs = new Map<Baseline, number>();
  for (const suite of suites) {
    for (const c of suite.cases(backends)) {
      if (!matchesFilter(options.filter, suite.name, c.name)) continue;
      console.error(`timing ${suite.name}/${c.name} [${c.backend}]`);
      const ms = medianMs(`${suite.name}/${c.name}`, c.run, options.quick);
      let baseline: CaseResult['baseline'] = null;
      if (c.baseline) {
        if (!baselineMs.has(c.baseline)) {
          console.error(`timing ${suite.name}/${c.name} baseline ${c.baseline.name}`);
          baselineMs.set(c.baseline, medianMs(c.baseline.name, c.baseline.run, options.quick));
        }
        baseline = { name: c.baseline.name, ms: baselineMs.get(c.baseline)! };
      }
      const gbps = c.bytes === undefined ? null : c.bytes / ms / 1e6;
      const gflops = c.flops === undefined ? null : c.flops / ms / 1e6;
      const peakGbps = roofline.gbps.get(c.backend), peakGflops = roofline.gflops.get(c.backend);
      results.push({
        suite: suite.name,
        case: c.name,
        backend: c.backend,
        params: c.params,
        ms,
        gbps,
        gflops,
        rooflineFraction: gflops !== null && peakGflops !== undefined ? gflops / peakGflops
          : gbps !== null && peakGbps !== undefined ? gbps / peakGbps : null,
        baseline,
      });
    }
  }
  return results;
}

/** Median milliseconds per call of `fn`, timed by benchmark.js. */
function medianMs(name: string, fn: () => void, quick: boolean): number {
  // Full runs: 30 samples (cycles of >= 50 ms each, benchmark.js's default minTime), then more
  // until another 2 s have passed (benchmark.js starts the maxTime clock once it has minSamples):
  // about 70 samples in 3.5 s. Quick runs only check that everything runs and give a rough figure.
  const bench = new Benchmark(name, fn, quick
    ? { minSamples: 5, maxTime: 0.25, minTime: 0.01 }
    : { minSamples: 30, maxTime: 2 });
  bench.run();
  if (bench.error) throw bench.error;
  const sample = [...bench.stats.sample].sort((a, b) => a - b);
  const mid = sample.length >> 1;
  const seconds = sample.length % 2 ? sample[mid] : (sample[mid - 1] + sample[mid]) / 2;
  return seconds * 1e3;
}

/** The aligned table, then each suite's footer lines. */
export function formatReport(results: CaseResult[], suites: Suite[]): string {
  const header = ['suite', 'case', 'backend', 'ms', 'GB/s', 'GFLOP/s', '% roofline', 'baseline ms', 'speedup'];
  const rows = results.map((r) => [
    r.suite,
    r.case,
    r.backend,
    formatFigure(r.ms),
    formatFigure(r.gbps),
    formatFigure(r.gflops),
    r.rooflineFraction === null ? '-' : `${(r.rooflineFraction * 100).toFixed(0)}%`,
    formatFigure(r.baseline?.ms ?? null),
    r.baseline ? `${formatFigure(r.baseline.ms / r.ms)}×` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const textColumns = 3;   // suite, case, backend are left-aligned; figures are right-aligned
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i < textColumns ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const lines = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  for (const suite of suites) {
    const own = results.filter((r) => r.suite === suite.name);
    if (own.length > 0 && suite.footer) lines.push('', ...suite.footer(own));
  }
  return lines.join('\n');
}

/** Three significant figures, without exponents; '-' for a figure that does not apply. */
export function formatFigure(x: number | null): string {
  if (x === null) return '-';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

export function writeJsonReport(file: string, results: CaseResult[]): void {
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}
