/**
 * CLI output: aligned tables for people, `--json` for programs. Long
 * operations report progress on stderr so stdout stays parseable.
 */
import Table from 'cli-table3';

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | boolean | undefined;
}

export function renderTable<T>(rows: T[], columns: Column<T>[]): string {
  const table = new Table({
    head: columns.map((c) => c.header),
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of rows) table.push(columns.map((c) => String(c.value(r) ?? '')));
  return table.toString();
}

export interface OutputOptions {
  json?: boolean;
}

/** Print rows as a table, or the raw value as JSON with --json. */
export function output<T>(opts: OutputOptions, rows: T[], columns: Column<T>[], raw: unknown = rows): void {
  if (opts.json) process.stdout.write(JSON.stringify(raw, null, 2) + '\n');
  else if (rows.length === 0) process.stdout.write('(none)\n');
  else process.stdout.write(renderTable(rows, columns) + '\n');
}

export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}
