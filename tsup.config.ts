import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'lib/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: false, // two configs build into dist/ at once: neither may wipe the other
    sourcemap: true,
    target: 'node20',
    // import.meta.url in the CJS build (lib/native.ts finds the package root from it).
    shims: true,
  },
  {
    // The `talaria` command (package.json "bin"): ESM only, run by node directly.
    entry: { cli: 'lib/cli.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
