/** Where corral's own files are: the repository root, its native builds, the CLI. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Repository root, found from this file whether it runs from source or from dist/. */
export function repoRoot(): string {
  let dir = here;
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'native', 'cni-shim', 'Makefile'))) return dir;
    dir = dirname(dir);
  }
  return process.env.CORRAL_ROOT ?? resolve(here, '../..');
}

export const NATIVE_BUILD_DIR = (): string => process.env.CORRAL_CNI_NATIVE_DIR ?? join(repoRoot(), 'native', 'cni-shim', 'build');

/**
 * How to run the corral CLI from here: like this process runs (from source
 * with tsx, or compiled), unless CORRAL_CNI_RUN_FROM=dist|source says otherwise
 * (benchmarks measure the compiled daemon's memory from a tsx-run script).
 */
export function corralCommand(): string[] {
  const want = process.env.CORRAL_CNI_RUN_FROM;
  const fromSource = want ? want === 'source' : fileURLToPath(import.meta.url).endsWith('.ts');
  const root = repoRoot();
  return fromSource ? [process.execPath, '--import', 'tsx', join(root, 'cli', 'corral.ts')] : [process.execPath, join(root, 'dist', 'cli', 'corral.js')];
}
