// `npm run bench -- [--filter <substring>] [--json <file>] [--quick] [--backend cpu|cuda|all]`
//
// Measures the roofline first (every selected backend, whatever the filter: the fractions need it),
// then times the cases that match the filter, prints the table to stdout and writes the JSON array.
// Progress goes to stderr, so stdout holds only the report.
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { info } from '../lib/index.js';
import {
  formatReport, matchesFilter, parseBenchOptions, runSuites, selectBackends, writeJsonReport, USAGE, type BenchOptions,
} from './harness.js';
import { measureFmaPeak, measureStreamTriad } from './roofline.js';
import gaeSuite from './gae.bench.js';
import whitenSuite from './whiten.bench.js';
import rlLossSuite from './rl_loss.bench.js';
import rewardsSuite from './rewards.bench.js';
import preferenceSuite from './preference.bench.js';
import samplingSuite from './sampling.bench.js';
import logitsSuite from './logits.bench.js';
import attentionSuite from './attention.bench.js';
import matmulSuite from './matmul.bench.js';
import optimizerSuite from './optimizer.bench.js';
import modelSuite from './model.bench.js';
import layersSuite from './layers.bench.js';

const SUITES = [
  gaeSuite, whitenSuite, rlLossSuite, rewardsSuite, preferenceSuite, logitsSuite, samplingSuite, attentionSuite, matmulSuite,
  optimizerSuite, layersSuite, modelSuite,
];

/** Runs the bench with command-line arguments (without node and the script); returns the exit code. */
export function runBench(argv: string[]): number {
  const machine = info();
  let options: BenchOptions;
  let backends: string[];
  try {
    options = parseBenchOptions(argv);
    backends = selectBackends(options.backend, machine.backends);
  } catch (error) {
    // Bad arguments are the user's to fix: the message and the usage, without a stack.
    console.error(`bench: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }

  // Other processes steal cores and bandwidth from every figure, so the report says how busy it was.
  const loadAverage = loadavg()[0];
  const triads = backends.map((backend) => {
    console.error(`timing roofline/stream-triad [${backend}]`);
    return measureStreamTriad(backend, options.quick);
  });
  const peaks = backends.map((backend) => {
    console.error(`timing roofline/fma-peak [${backend}]`);
    return measureFmaPeak(backend, options.quick);
  });
  const roofline = {
    gbps: new Map(triads.map((t) => [t.backend, t.gbps!])),
    gflops: new Map(peaks.map((p) => [p.backend, p.gflops!])),
  };
  const results = [
    ...[...triads, ...peaks].filter((t) => matchesFilter(options.filter, t.suite, t.case)),
    ...runSuites(SUITES, backends, options, roofline),
  ];
  if (results.length === 0) {
    console.error(`no case matches --filter ${options.filter}`);
    return 1;
  }

  console.log(`talaria ${machine.version}, simd ${machine.simd}, ${machine.threads} threads, node ${process.version}, ` +
    `load average ${loadAverage.toFixed(1)} at start${options.quick ? ' (--quick: rough figures)' : ''}`);
  if (loadAverage > 1) console.log('warning: the machine was busy when the bench started; its figures are noisy');
  console.log(`roofline: ${triads.map((t, i) => `${t.backend} STREAM triad ${t.gbps!.toFixed(1)} GB/s, ` +
    `FMA peak ${peaks[i].gflops!.toFixed(0)} GFLOP/s`).join('; ')}`);
  console.log('');
  console.log(formatReport(results, SUITES));
  if (options.json) {
    writeJsonReport(options.json, results);
    console.error(`wrote ${results.length} results to ${options.json}`);
  }
  return 0;
}

// Run directly (npm run bench): parse this process's arguments.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = runBench(process.argv.slice(2));
