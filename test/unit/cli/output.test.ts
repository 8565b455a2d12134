/**
 * CLI tables: key/value tables (`corral app show`'s head, FIELD/VALUE and
 * KEY/VALUE listings) fit the terminal, long values wrapping inside their
 * column with nothing lost; other tables keep a row per line; no line ends
 * in padding.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_WIDTH, fitWidths, output, renderKeyValue, renderTable, terminalWidth, wrapText } from '../../../cli/output.js';

/** A command line as long as the one in the report (~280 columns). */
const LONG_CMD = `python3 -m http.server 8080 --bind 0.0.0.0 --directory /srv/www/${'static-assets/'.repeat(12)}public ${'--flag value '.repeat(6)}--end`;
const words = (s: string): string[] => s.split(/\s+/).filter(Boolean);
const widest = (text: string): number => Math.max(...text.split('\n').map((l) => [...l].length));

afterEach(() => vi.restoreAllMocks());

describe('terminal width', () => {
  it("is the terminal's columns, or 100 when stdout is not a terminal; $COLUMNS overrides both", () => {
    expect(terminalWidth({ isTTY: true, columns: 132 }, {})).toBe(132);
    expect(terminalWidth({ isTTY: false }, {})).toBe(DEFAULT_WIDTH);
    expect(terminalWidth({}, {})).toBe(100);
    expect(terminalWidth({ isTTY: true, columns: 132 }, { COLUMNS: '60' })).toBe(60);
    expect(terminalWidth({ isTTY: false }, { COLUMNS: 'wide' })).toBe(100);
    expect(terminalWidth({ isTTY: false }, { COLUMNS: '0' })).toBe(100);
  });
});

describe('wrapText', () => {
  it('wraps at spaces, cuts a word longer than the line, and leaves short lines alone', () => {
    expect(wrapText('short', 10)).toBe('short');
    expect(wrapText('one two three four', 9)).toBe('one two\nthree\nfour');
    expect(wrapText('abcdefghijklmnopqrstuvwxyz end', 10)).toBe('abcdefghij\nklmnopqrst\nuvwxyz end');
    expect(wrapText('first line\nsecond line here', 11)).toBe('first line\nsecond line\nhere');
    expect(wrapText('ééééé ééééé', 5)).toBe('ééééé\nééééé'); // code points, not bytes
  });
});

describe('fitWidths', () => {
  it('keeps natural widths that fit, and otherwise lets the narrow columns keep theirs while the wide ones share the rest', () => {
    expect(fitWidths([9, 40], [3, 5], 100)).toEqual([9, 40]);
    expect(fitWidths([9, 280], [3, 5], 100)).toEqual([9, 89]); // 100 - 2 (gap) - 9
    expect(fitWidths([5, 150, 200], [5, 4, 4], 100)).toEqual([5, 45, 46]);
    // Never under a column's minimum, even when that overflows a tiny terminal.
    expect(fitWidths([30, 280], [30, 5], 20)).toEqual([30, 5]);
  });
});

describe('key/value tables', () => {
  const head: Array<[string, string]> = [
    ['app', 'web'],
    ['status', 'running: 2 of 2 instances running'],
    ['run', LONG_CMD],
    ['resources', 'cpus 0.5, mem 128 MB, disk 0 MB, role *'],
  ];

  it('fit the width: the long value wraps in its column, nothing is lost, no line is padded', () => {
    expect(LONG_CMD.length).toBeGreaterThan(250);
    for (const width of [100, 80, 132]) {
      const text = renderKeyValue(head, width);
      const lines = text.split('\n');
      expect(widest(text)).toBeLessThanOrEqual(width);
      for (const l of lines) expect(l).toBe(l.trimEnd());
      // Values start in one column: the widest key plus the gap.
      const valueAt = 'resources'.length + 2;
      expect(lines[0]).toBe(`KEY${' '.repeat(valueAt - 3)}VALUE`);
      const run = lines.findIndex((l) => l.startsWith('run '));
      const continued = lines.slice(run + 1).findIndex((l) => !l.startsWith(' '.repeat(valueAt)));
      const runLines = lines.slice(run, run + 1 + continued).map((l) => l.slice(valueAt));
      expect(runLines.length).toBeGreaterThan(1);
      // Every character is there, in order (a path longer than the column is cut, not dropped)…
      expect(runLines.join('').replace(/\s+/g, '')).toBe(LONG_CMD.replace(/\s+/g, ''));
      // …and lines break between words where words fit.
      expect(words(runLines[0]!)).toEqual(words(LONG_CMD).slice(0, words(runLines[0]!).length));
      expect(runLines.at(-1)!.endsWith('--end')).toBe(true);
      expect(lines.at(-1)).toBe(`resources${'  '}cpus 0.5, mem 128 MB, disk 0 MB, role *`);
    }
  });

  it('short tables stay exactly as they were, minus trailing padding', () => {
    expect(
      renderKeyValue(
        [
          ['app', 'web'],
          ['instances', '2 running of 2'],
        ],
        100,
      ),
    ).toBe('KEY        VALUE\napp        web\ninstances  2 running of 2');
  });

  it('through output(): a FIELD/VALUE table fits the terminal; a wider table keeps a row per line', () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    const prev = process.env.COLUMNS;
    process.env.COLUMNS = '72';
    try {
      output(
        {},
        [{ k: 'command', v: LONG_CMD }],
        [
          { header: 'FIELD', value: (r) => r.k },
          { header: 'VALUE', value: (r) => r.v },
        ],
      );
      output(
        {},
        [{ a: 'x', b: LONG_CMD, c: 'y' }],
        [
          { header: 'A', value: (r) => r.a },
          { header: 'B', value: (r) => r.b },
          { header: 'C', value: (r) => r.c },
        ],
      );
      output(
        { json: true },
        [{ k: 'command', v: LONG_CMD }],
        [
          { header: 'FIELD', value: (r) => r.k },
          { header: 'VALUE', value: (r) => r.v },
        ],
      );
    } finally {
      if (prev === undefined) delete process.env.COLUMNS;
      else process.env.COLUMNS = prev;
    }
    const [kv, wide, json] = written;
    expect(widest(kv!)).toBeLessThanOrEqual(72);
    expect(kv!.trimEnd().split('\n').length).toBeGreaterThan(2);
    expect(wide!.trimEnd().split('\n')).toHaveLength(2); // header and one row, as before
    expect(wide!).toContain(LONG_CMD);
    expect(JSON.parse(json!)).toEqual([{ k: 'command', v: LONG_CMD }]); // --json: the value whole
  });

  it('a plain table without a width is one line per row with no trailing padding', () => {
    const text = renderTable(
      [
        { a: 'long value here', b: 'x' },
        { a: 'y', b: 'z' },
      ],
      [
        { header: 'A', value: (r) => r.a },
        { header: 'B', value: (r) => r.b },
      ],
    );
    expect(text).toBe('A                B\nlong value here  x\ny                z');
  });
});
