#!/usr/bin/env node
// Runs the CUDA emulator's self-tests (native/cuemu/selftest) and checks each case against the table
// below: correct programs must run clean, planted bugs must be caught by the check named for them.
//
//   node scripts/cuemu-selftest.mjs --binary build/cuemu_selftest --kind release|thread|address
//
// --kind says how the binary was built: plain (release), TALARIA_SANITIZE=thread, or
// TALARIA_SANITIZE=address (ASan + LeakSanitizer + UBSan). Every case runs as its own child process
// with CUEMU_WORKERS=2. Release runs the correct cases under each of the four schedules and the bug
// cases under fwd; the sanitizer kinds use fwd only. Prints one line per check and ends with
// "N passed, N failed"; exits 0 iff nothing failed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

const KINDS = ['release', 'thread', 'address'];
const ALL_SCHEDULES = ['fwd', 'rev', 'rand:1', 'rand:2'];
const TIMEOUT_MS = 300_000; // TSan runs 13-26x slower than release
const STDERR_TAIL_LINES = 25;

// Correct programs: exit 0 and nothing from the emulator or a sanitizer on stderr, everywhere.
const CORRECT_CASES = [
  'block_reduce_tree',
  'syncthreads_predicates',
  'atomics_across_blocks',
  'dynamic_smem_64k',
  'cudamalloc_alignment',
  'warp_shuffles',
  'warp_votes_reduce_match',
  'partial_last_warp',
  'divergent_warp_masks',
  'cp_async_wait_all',
  'cp_async_two_groups',
  'mma_ldmatrix',
  'mma_direct_fragments',
  'ldmatrix_trans',
];
const CLEAN_FORBIDS = ['cuemu:', 'Sanitizer', 'runtime error'];

// Planted bugs, per kind of build: the exit status (a number, or 'nonzero') and the texts stderr must
// contain. A kind that is missing means the case does not run in that build. `schedules` overrides the
// default (fwd). Sanitizer reports other than the one that must catch the bug (or ones it `allow`s,
// for reports that come as a pair) must not appear: a bug the emulator reports must not also set off
// spurious sanitizer reports.
const EXIT_2_EVERYWHERE = (...stderr) => ({
  release: { exit: 2, stderr },
  thread: { exit: 2, stderr },
  address: { exit: 2, stderr },
});
const BUG_CASES = {
  // Wrong results under fwd; TSan names the race in the kernel.
  missing_barrier_raw: {
    release: { exit: 1 },
    thread: { exit: 'nonzero', stderr: ['ThreadSanitizer: data race', 'neighbour_sum_missing_barrier'] },
    address: { exit: 1 },
  },
  missing_barrier_war: {
    release: { exit: 1 },
    thread: { exit: 'nonzero', stderr: ['ThreadSanitizer: data race', 'tiled_neighbour_sum_missing_war_barrier'] },
    address: { exit: 1 },
  },
  half_warp_shuffle: EXIT_2_EVERYWHERE('cuemu: error', 'deadlock'),
  // The copies happen at the wait, so forgetting it fails under every schedule and build.
  cp_async_no_wait: {
    release: { exit: 1, schedules: ALL_SCHEDULES },
    thread: { exit: 1 },
    address: { exit: 1 },
  },
  global_out_of_bounds: {
    address: {
      exit: 'nonzero',
      stderr: ['AddressSanitizer', 'shift_right', 'cuemu: the report above happened in CUDA block'],
    },
  },
  static_shared_out_of_bounds: {
    address: { exit: 'nonzero', stderr: ['runtime error', 'out of bounds'], allow: ['UndefinedBehaviorSanitizer'] },
  },
  barrier_two_sites: EXIT_2_EVERYWHERE('cuemu: error', 'threads wait at different barriers'),
  barrier_after_exit: EXIT_2_EVERYWHERE('cuemu: error', 'exited'),
  dynamic_smem_too_large: EXIT_2_EVERYWHERE('cudaErrorInvalidValue', 'dynamic shared memory'),
  leaked_cudamalloc: {
    address: { exit: 'nonzero', stderr: ['LeakSanitizer', 'detected memory leaks'], allow: ['AddressSanitizer'] },
  },
};
const SANITIZER_TEXT = {
  release: [],
  thread: ['ThreadSanitizer'],
  address: ['AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer', 'runtime error'],
};

function usage(message) {
  console.error(`cuemu-selftest: ${message}`);
  console.error('usage: node scripts/cuemu-selftest.mjs --binary <cuemu_selftest> --kind release|thread|address');
  process.exit(2);
}

function parseCommandLine() {
  let values;
  try {
    ({ values } = parseArgs({ options: { binary: { type: 'string' }, kind: { type: 'string' } } }));
  } catch (err) {
    usage(err.message);
  }
  if (!values.binary) usage('--binary is required');
  if (!existsSync(values.binary)) usage(`no such file: ${values.binary}`);
  if (!KINDS.includes(values.kind)) usage(`--kind must be one of ${KINDS.join(', ')}`);
  return values;
}

// Every (case, schedule) to run in this kind of build, with what it must do.
function plannedRuns(kind) {
  const runs = [];
  const correctSchedules = kind === 'release' ? ALL_SCHEDULES : ['fwd'];
  for (const name of CORRECT_CASES)
    for (const schedule of correctSchedules)
      runs.push({ name, schedule, expect: { exit: 0, stderr: [], forbid: CLEAN_FORBIDS } });
  for (const [name, kinds] of Object.entries(BUG_CASES)) {
    const e = kinds[kind];
    if (!e) continue;
    const required = e.stderr ?? [];
    const allowed = [...required, ...(e.allow ?? [])];
    const forbid = SANITIZER_TEXT[kind].filter((text) => !allowed.some((a) => a.includes(text)));
    for (const schedule of e.schedules ?? ['fwd'])
      runs.push({ name, schedule, expect: { exit: e.exit, stderr: required, forbid } });
  }
  return runs;
}

function childEnv(kind, schedule) {
  const env = { ...process.env, CUEMU_WORKERS: '2', CUEMU_SCHEDULE: schedule };
  if (kind === 'thread') env.TSAN_OPTIONS = 'halt_on_error=0 exitcode=66';
  if (kind === 'address') env.ASAN_OPTIONS = 'detect_leaks=1';
  return env;
}

function tail(text, lines) {
  const all = text.trimEnd().split('\n');
  const shown = all.slice(-lines).map((l) => `    | ${l}`);
  if (all.length > lines) shown.unshift(`    | ... (${all.length - lines} earlier lines)`);
  return shown.join('\n');
}

// Why a finished child does not meet `expect`; empty when it does.
function mismatches(result, expect) {
  const reasons = [];
  if (result.error) return [`could not run: ${result.error.message}`];
  const stderr = result.stderr ?? '';
  const status = result.status === null ? `signal ${result.signal}` : `exit ${result.status}`;
  const exitOk = expect.exit === 'nonzero' ? result.status !== 0 : result.status === expect.exit;
  if (!exitOk) reasons.push(`expected exit ${expect.exit}, got ${status}`);
  for (const text of expect.stderr)
    if (!stderr.includes(text)) reasons.push(`stderr lacks "${text}"`);
  for (const text of expect.forbid)
    if (stderr.includes(text)) reasons.push(`stderr contains "${text}"`);
  return reasons;
}

function main() {
  const { binary, kind } = parseCommandLine();
  let passed = 0;
  let failed = 0;
  const pass = (line) => {
    passed++;
    console.log(`ok  ${line}`);
  };
  const fail = (line, detail) => {
    failed++;
    console.log(`FAIL ${line}\n${detail}`);
  };

  // The binary's case list must be exactly the table's, so a case cannot be dropped silently.
  const list = spawnSync(binary, ['--list'], { encoding: 'utf8' });
  const listed = new Set((list.stdout ?? '').split('\n').filter((l) => l.length > 0));
  const table = new Set([...CORRECT_CASES, ...Object.keys(BUG_CASES)]);
  const missing = [...table].filter((n) => !listed.has(n));
  const extra = [...listed].filter((n) => !table.has(n));
  if (list.status === 0 && missing.length === 0 && extra.length === 0) {
    pass(`--list matches the table (${table.size} cases)`);
  } else {
    const why = [];
    if (list.status !== 0) why.push(`--list exited with ${list.status ?? list.signal}`);
    if (missing.length > 0) why.push(`in the table but not listed: ${missing.join(', ')}`);
    if (extra.length > 0) why.push(`listed but not in the table: ${extra.join(', ')}`);
    fail('--list matches the table', `    ${why.join('\n    ')}`);
  }

  for (const run of plannedRuns(kind)) {
    const label = `${run.name} [${kind}/${run.schedule}]`;
    if (!listed.has(run.name)) continue; // already reported by the --list check
    const result = spawnSync(binary, [run.name], {
      encoding: 'utf8',
      env: childEnv(kind, run.schedule),
      timeout: TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    const reasons =
      result.error?.code === 'ETIMEDOUT' ? [`timed out after ${TIMEOUT_MS / 1000} s`] : mismatches(result, run.expect);
    if (reasons.length === 0) pass(label);
    else fail(`${label}: ${reasons.join('; ')}`, tail(result.stderr ?? '', STDERR_TAIL_LINES));
  }

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
