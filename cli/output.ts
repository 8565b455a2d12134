/**
 * CLI output: aligned tables for people, `--json` for programs. Long
 * operations report progress on stderr so stdout stays parseable.
 *
 * Key/value tables (two columns, the second headed VALUE) fit the terminal:
 * a long value — a command line, a message — wraps inside its column
 * instead of widening every line to its length; `--json` has every value
 * whole. Other tables keep one line per row, so grep and awk still see a
 * row whole. No table line ends in padding.
 */
import Table from 'cli-table3';

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | boolean | undefined;
}

/** Width when stdout is not a terminal (a pipe, a file, a test). */
export const DEFAULT_WIDTH = 100;
/** Spaces between columns. */
const GAP = 2;

/** Columns to fit tables into: $COLUMNS if set, else the terminal's width, else 100. */
export function terminalWidth(stream: { isTTY?: boolean; columns?: number } = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  if (stream.isTTY && stream.columns && stream.columns > 0) return stream.columns;
  return DEFAULT_WIDTH;
}

/** Display length, counting code points (so an "é" is one column, as in a terminal). */
const len = (s: string): number => [...s].length;

/** Wraps each line of `text` to `width` columns at spaces; a word longer than a line is cut into pieces. */
export function wrapText(text: string, width: number): string {
  if (width < 1) return text;
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (len(line) <= width) {
      out.push(line);
      continue;
    }
    let cur = '';
    for (const word of line.split(/ +/)) {
      if (cur && len(cur) + 1 + len(word) <= width) {
        cur += ` ${word}`;
        continue;
      }
      if (cur) out.push(cur);
      let w = [...word];
      while (w.length > width) {
        out.push(w.slice(0, width).join(''));
        w = w.slice(width);
      }
      cur = w.join('');
    }
    if (cur) out.push(cur);
  }
  return out.join('\n');
}

/**
 * Column widths that fit `total` columns (with the gaps): narrow columns keep
 * their natural width, the wide ones share what is left equally (max-min
 * fair). No column goes under its minimum (its header), so on a very narrow
 * terminal the table may still be wider than asked.
 */
export function fitWidths(natural: number[], minimum: number[], total: number): number[] {
  let left = total - GAP * (natural.length - 1);
  if (natural.reduce((a, b) => a + b, 0) <= left) return natural.slice();
  const widths = natural.slice();
  const order = natural.map((_, i) => i).sort((a, b) => natural[a]! - natural[b]!);
  let remaining = order.length;
  for (const i of order) {
    const share = Math.floor(Math.max(0, left) / remaining);
    widths[i] = Math.max(Math.min(minimum[i]!, natural[i]!), Math.min(natural[i]!, share));
    left -= widths[i]!;
    remaining--;
  }
  return widths;
}

interface TableOptions {
  /** Fit the table into this many columns, wrapping the widest cells; unset: one line per row. */
  width?: number;
  /** Columns (by index) never wrapped when fitting, e.g. a key/value table's keys. */
  whole?: number[];
}

export function renderTable<T>(rows: T[], columns: Column<T>[], opts: TableOptions = {}): string {
  let cells = rows.map((r) => columns.map((c) => String(c.value(r) ?? '')));
  if (opts.width !== undefined) {
    const lineWidth = (s: string): number => Math.max(0, ...s.split('\n').map(len));
    const natural = columns.map((c, i) => Math.max(len(c.header), ...cells.map((row) => lineWidth(row[i]!))));
    const widths = fitWidths(
      natural,
      columns.map((c, i) => (opts.whole?.includes(i) ? natural[i]! : len(c.header))),
      opts.width,
    );
    cells = cells.map((row) => row.map((cell, i) => (widths[i]! < natural[i]! ? wrapText(cell, widths[i]!) : cell)));
  }
  const table = new Table({
    head: columns.map((c) => c.header),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: ' '.repeat(GAP),
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of cells) table.push(row);
  // cli-table3 pads every cell to its column's width, the last one too: drop that padding.
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** Key/value tables: two columns, the second headed VALUE (KEY/VALUE, FIELD/VALUE). */
const isKeyValue = (columns: Array<Column<never>>): boolean => columns.length === 2 && columns[1]!.header === 'VALUE';

/** Keys stay whole; values wrap to what is left of `width`. */
const keyValueFit = (width: number): TableOptions => ({ width, whole: [0] });

/** A key/value listing (`corral app show`'s head): fits `width` (the terminal's), long values wrap. */
export function renderKeyValue(pairs: Array<[key: string, value: string]>, width = terminalWidth()): string {
  return renderTable(
    pairs,
    [
      { header: 'KEY', value: (p) => p[0] },
      { header: 'VALUE', value: (p) => p[1] },
    ],
    keyValueFit(width),
  );
}

interface OutputOptions {
  json?: boolean;
}

/** Print rows as a table, or the raw value as JSON with --json. Key/value tables fit the terminal. */
export function output<T>(opts: OutputOptions, rows: T[], columns: Column<T>[], raw: unknown = rows): void {
  if (opts.json) process.stdout.write(JSON.stringify(raw, null, 2) + '\n');
  else if (rows.length === 0) process.stdout.write('(none)\n');
  else process.stdout.write(renderTable(rows, columns, isKeyValue(columns as Array<Column<never>>) ? keyValueFit(terminalWidth()) : {}) + '\n');
}

export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}
