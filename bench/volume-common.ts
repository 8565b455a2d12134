/**
 * Shared bits of the benchmarks: numeric flags, statistics and a figure
 * table (the volume benchmarks were the first to need them).
 */
export interface Figure {
  what: string;
  corral: string;
  peer: string;
  goal: string;
  verdict: string;
}

export const median = (xs: number[]): number => pct(xs, 50);
export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
export const fmt = (v: number, digits = 1): string => v.toFixed(digits);

export function printFigures(title: string, figures: Figure[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ title, figures }, null, 2) + '\n');
    return;
  }
  const cols: (keyof Figure)[] = ['what', 'corral', 'peer', 'goal', 'verdict'];
  const widths = cols.map((c) => Math.max(c.length, ...figures.map((f) => f[c].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(cols.map((c) => c.toUpperCase()))}\n`);
  for (const f of figures) process.stdout.write(line(cols.map((c) => f[c])) + '\n');
}

/**
 * A numeric flag (`--name N`), or `dflt` when absent; anything but a number
 * ≥ `min` (default 0), or a fraction where a whole number is asked for, ends
 * the run with a clear message.
 */
export function flag(name: string, dflt: number, opts: { whole?: boolean; min?: number } = {}): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const value = Number(process.argv[i + 1]);
  const min = opts.min ?? 0;
  if (process.argv[i + 1] === undefined || !Number.isFinite(value) || value < min || (opts.whole && !Number.isInteger(value))) {
    process.stderr.write(`${name} needs a ${opts.whole ? 'whole number' : 'number'} ≥ ${min}, not ${JSON.stringify(process.argv[i + 1] ?? '')}\n`);
    process.exit(2);
  }
  return value;
}

export const jsonOutput = (): boolean => process.argv.includes('--json');
