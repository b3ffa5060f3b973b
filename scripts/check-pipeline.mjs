// Checks what `talaria pipeline --quick` must show on world A (CI's main-job smoke run), and prints
// "N passed, N failed" like every other test runner .ci/run adds up.
//
//   node scripts/check-pipeline.mjs <out dir>
//
// The margins come from quick runs with seeds 0-3, which reached: SFT accuracy 0.11-0.16 over a base
// at 0.00; RM accuracy 0.66-0.69 against the noisy rankings; PPO toxic rates 0.003-0.010 against
// SFT's 0.05-0.13. Each margin sits well inside every seed, and far from what a broken stage gives (a
// base-like SFT, a chance-level RM, a PPO that does not move the toxic rate).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
if (!out) {
  console.error('usage: node scripts/check-pipeline.mjs <pipeline output folder>');
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'pass' : 'FAIL'}  ${name}  (${detail})`);
  if (ok) passed++;
  else failed++;
}

let results = null;
try {
  results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  check('results.json parses', true, join(out, 'results.json'));
} catch (error) {
  check('results.json parses', false, error.message);
}
const html = existsSync(join(out, 'report.html')) ? readFileSync(join(out, 'report.html'), 'utf8') : '';
check('report.html is a complete HTML page with charts', html.startsWith('<!DOCTYPE html>') && html.trimEnd().endsWith('</html>') && html.includes('<svg'), `${html.length} bytes`);

if (results) {
  const { base, sft, ppo, ppoPtx } = results.policies;
  const fields = ['score', 'winRateVsSft', 'accuracy', 'toxicRate', 'rambleRate', 'noEndRate', 'klVsSft', 'pretrainLoss'];
  check('every policy reports every figure', [base, sft, ppo, ppoPtx].every((p) => p && fields.every((f) => typeof p[f] === 'number')), fields.join(', '));
  check('SFT beats base on accuracy', sft.accuracy >= base.accuracy + 0.08, `SFT ${sft.accuracy.toFixed(3)} vs base ${base.accuracy.toFixed(3)}, margin 0.08`);
  check('RM accuracy is above chance', results.rmAccuracy.noisy >= 0.6, `noisy ${results.rmAccuracy.noisy.toFixed(3)} >= 0.6 (chance 0.5)`);
  check('PPO lowers the toxic rate below SFT', ppo.toxicRate <= 0.5 * sft.toxicRate, `PPO ${ppo.toxicRate.toFixed(3)} <= 0.5 x SFT ${sft.toxicRate.toFixed(3)}`);
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
