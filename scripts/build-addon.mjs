#!/usr/bin/env node
// Builds the native addon; `npm install` runs this.
//   cmake on PATH -> cmake-js (CPU, plus CUDA when nvcc is found). The full log, including the
//                    `ptxas -v` resource lines, is kept in build/build.log.
//   no cmake      -> node-gyp with binding.gyp (CPU only).
// Environment: TALARIA_CUDA=AUTO|ON|OFF|EMU (cmake only; EMU is the cuda-emu test build),
//              TALARIA_BUILD_DIR (default build),
//              TALARIA_SKIP_BUILD=1 (use a prebuilt binary, see lib/native.ts).
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

if (process.env.TALARIA_SKIP_BUILD === '1') {
  console.log('talaria: TALARIA_SKIP_BUILD=1, not building the addon');
  process.exit(0);
}

function have(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(command, args, logFile) {
  console.log(`talaria: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const output = (result.stdout ?? '') + (result.stderr ?? '');
  process.stdout.write(output);
  if (logFile) {
    mkdirSync(dirname(logFile), { recursive: true });
    appendFileSync(logFile, output);
  }
  if (result.status !== 0) {
    console.error(`talaria: the native build failed (${command} exited with ${result.status ?? result.signal}).`);
    process.exit(result.status ?? 1);
  }
}

const buildDir = resolve(root, process.env.TALARIA_BUILD_DIR ?? 'build');
if (have('cmake')) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const cuda = process.env.TALARIA_CUDA ?? 'AUTO';
  const log = join(buildDir, 'build.log');
  rmSync(log, { force: true });
  // configure every time, so a changed TALARIA_CUDA takes effect in an existing build folder
  run(process.execPath, [cmakeJs, 'configure', '--out', buildDir, `--CDTALARIA_CUDA=${cuda}`], log);
  run(process.execPath, [cmakeJs, 'build', '--out', buildDir, '--parallel', '2'], log);
} else {
  console.log('talaria: cmake not found; building the CPU-only addon with node-gyp (binding.gyp)');
  const nodeGyp = process.env.npm_config_node_gyp ?? require.resolve('node-gyp/bin/node-gyp.js');
  run(process.execPath, [nodeGyp, 'rebuild'], null);
}
