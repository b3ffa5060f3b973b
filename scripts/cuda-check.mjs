#!/usr/bin/env node
// Compiles every native/cuda/*.cu with nvcc, the way the CMake CUDA build does (SASS for sm_80 and
// sm_90 plus compute_90 PTX), and the emulator's self-test programs (native/cuemu/selftest/*.cu), which
// must be valid CUDA too. Warnings count as errors. It prints ptxas's resource usage for each
// kernel and fails on any register spill. This runs on machines without a GPU: nothing is executed.
//
//   node scripts/cuda-check.mjs            # NVCC=/path/to/nvcc to pick a compiler
//
// Exit status: 0 when every file compiles without warnings and without spills, or when no nvcc is
// installed (prints "skipped (no nvcc)"). 1 otherwise, including when $NVCC names a missing compiler.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDirs = [join(root, 'native', 'cuda'), join(root, 'native', 'cuemu', 'selftest')];

const flags = [
  '-c', '-std=c++17', '-O3', '-DTALARIA_WITH_CUDA', '-Inative',
  '-gencode', 'arch=compute_80,code=sm_80',
  '-gencode', 'arch=compute_90,code=sm_90',
  '-gencode', 'arch=compute_90,code=compute_90',
  '-Xptxas', '-v',
  '-Werror', 'all-warnings',
  '-Xcompiler', '-Wall,-Wextra,-Werror',
];

function runs(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

function findNvcc() {
  if (process.env.NVCC) return { nvcc: process.env.NVCC, explicit: true };
  if (runs('nvcc')) return { nvcc: 'nvcc', explicit: false };
  const fallback = '/usr/local/cuda/bin/nvcc';
  if (existsSync(fallback) && runs(fallback)) return { nvcc: fallback, explicit: false };
  return { nvcc: null, explicit: false };
}

// Itanium names -> C++ names, when binutils' c++filt is around; otherwise the text is left as is.
function demangle(text) {
  const r = spawnSync('c++filt', [], { input: text, encoding: 'utf8' });
  return !r.error && r.status === 0 ? r.stdout : text;
}

const { nvcc, explicit } = findNvcc();
if (nvcc === null) {
  console.log('cuda-check: skipped (no nvcc)');
  process.exit(0);
}
if (explicit && !runs(nvcc)) {
  console.error(`cuda-check: NVCC=${nvcc} does not run`);
  process.exit(1);
}

const sources = sourceDirs.flatMap((dir) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cu')).sort().map((f) => join(dir, f)) : [],
);
const outDir = mkdtempSync(join(tmpdir(), 'talaria-cuda-check-'));
const spillRe = /(\d+) bytes spill stores, (\d+) bytes spill loads/;
let failed = 0;
let spills = 0;

try {
  for (const [index, src] of sources.entries()) {
    const obj = join(outDir, `${index}.o`);
    const started = Date.now();
    const r = spawnSync(nvcc, [...flags, src, '-o', obj], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const output = demangle(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    const name = relative(root, src);
    if (r.error) {
      console.error(`cuda-check: cannot run ${nvcc}: ${r.error.message}`);
      failed++;
      continue;
    }
    const lines = output.split('\n').filter((l) => l.trim() !== '');
    // ptxas -v prints "ptxas info : ..." lines and an indented "N bytes stack frame, ..." line per
    // function; everything else from nvcc here is a warning or an error.
    const ptxas = lines.filter((l) => l.startsWith('ptxas info') || /bytes stack frame/.test(l));
    const other = lines.filter((l) => !ptxas.includes(l));
    console.log(`== ${name} (${r.status === 0 ? 'ok' : 'FAILED'}, ${seconds}s)`);
    for (const l of ptxas) {
      const m = spillRe.exec(l);
      const spilled = m !== null && (Number(m[1]) > 0 || Number(m[2]) > 0);
      if (spilled) spills++;
      console.log(`${spilled ? '!! ' : '   '}${l.trim()}`);
    }
    for (const l of other) console.log(`   ${l}`);
    if (r.status !== 0) failed++;
  }
} finally {
  rmSync(outDir, { recursive: true, force: true });
}

console.log(`cuda-check: ${sources.length} files, ${spills} spills${failed ? `, ${failed} failed` : ''}`);
process.exit(failed > 0 || spills > 0 ? 1 : 0);
