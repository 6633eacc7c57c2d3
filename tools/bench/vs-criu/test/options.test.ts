import { describe, expect, it } from 'vitest';
import { firstErrorLine, median, parseArgs, parseTimeOutput, ROWS, ratios, selectRows } from '../options.js';

const defaults = { criuTs: '/repo/node_modules/.bin/criu-ts' };

describe('parseArgs', () => {
  it('defaults: every row, 7 rounds, 1 warm-up, no CRIU, 500 connections', () => {
    const o = parseArgs([], defaults);
    expect(o).toEqual({
      rounds: 7,
      warmup: 1,
      rows: ROWS.map((r) => r.id),
      criuTs: defaults.criuTs,
      criu: undefined,
      json: false,
      conns: 500,
      help: false,
    });
  });

  it('takes each option, as two words or with =', () => {
    const o = parseArgs(
      [
        '--criu',
        '/c/criu',
        '--criu-ts=/x/criu-ts',
        '--rounds',
        '3',
        '--warmup=0',
        '--rows',
        'tcp,sleep',
        '--json',
        '--conns',
        '1000',
      ],
      defaults,
    );
    expect(o).toMatchObject({
      criu: '/c/criu',
      criuTs: '/x/criu-ts',
      rounds: 3,
      warmup: 0,
      rows: ['sleep', 'tcp'],
      json: true,
      conns: 1000,
    });
    expect(parseArgs(['-h'], defaults).help).toBe(true);
  });

  it('refuses what it does not know, missing values and bad numbers', () => {
    expect(() => parseArgs(['--round', '3'], defaults)).toThrow(/unknown argument --round/);
    expect(() => parseArgs(['--rounds'], defaults)).toThrow(/--rounds needs a value/);
    expect(() => parseArgs(['--rounds', 'x'], defaults)).toThrow(/wants a number/);
    expect(() => parseArgs(['--rounds', '0'], defaults)).toThrow(/1\.\.1000/);
    expect(() => parseArgs(['--json=1'], defaults)).toThrow(/no value/);
  });
});

describe('selectRows', () => {
  it("keeps the table's order and drops repeats", () => {
    expect(selectRows('tcp, mem2g,sleep,tcp')).toEqual(['sleep', 'mem2g', 'tcp']);
  });
  it('refuses an unknown or empty selection', () => {
    expect(() => selectRows('sleep,mem1g')).toThrow(/unknown row mem1g/);
    expect(() => selectRows(' , ')).toThrow(/no row/);
  });
});

describe('statistics', () => {
  it('median of odd, even and empty lists', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeUndefined();
  });

  it('per-round ratios use only rounds where both tools have a figure', () => {
    // criu-ts / CRIU per round: 2, (none), 3, 1 -> median 2; medians 45 (of all four) / 20 -> 2.25
    const r = ratios([40, 50, 60, 20], [20, undefined, 20, 20]);
    expect(r.pairs).toBe(3);
    expect(r.medianOfRatios).toBe(2);
    expect(r.ratioOfMedians).toBe(45 / 20);
    expect(ratios([1, 2], [undefined, undefined])).toEqual({
      medianOfRatios: undefined,
      ratioOfMedians: undefined,
      pairs: 0,
    });
  });
});

describe('tool output', () => {
  it('firstErrorLine prefers an error line, else the first non-empty one', () => {
    expect(firstErrorLine('\nWarn: x\nError (criu/cr-dump.c:1): boom\nError: later\n')).toBe(
      'Error (criu/cr-dump.c:1): boom',
    );
    expect(firstErrorLine('\n  something odd\n')).toBe('something odd');
    expect(firstErrorLine('')).toBeUndefined();
  });

  it('parseTimeOutput reads the last line of /usr/bin/time -f "%e %U %S %M"', () => {
    expect(parseTimeOutput('0.25 0.10 0.05 60212\n')).toEqual({ userSysMs: 150, maxRssKiB: 60212 });
    expect(parseTimeOutput('Command exited with non-zero status 1\n0.01 0.00 0.01 3000\n')).toEqual({
      userSysMs: 10,
      maxRssKiB: 3000,
    });
    expect(parseTimeOutput('')).toBeUndefined();
  });
});
