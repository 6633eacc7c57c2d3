// The CLI's log (-v, -o, --log-format): CRIU's text lines or pino's JSON lines, both behind core's
// Logger, which dump and restore write to. Checked by reading the file -o writes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeLogger } from '@criu-ts/core';
import { afterAll, describe, expect, it } from 'vitest';

const tmp = mkdtempSync(path.join(tmpdir(), 'criu-ts-log-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** Logs one line at each level through `makeLogger` and a child, and gives back the -o file's lines. */
function logAll(verbosity: number, logFormat: 'text' | 'json'): string[] {
  const logFile = `log-${n++}.log`;
  const log = makeLogger({ verbosity, logFile, logFormat }, tmp, 'dump');
  expect(log.toFile).toBe(true);
  log.error('e1');
  log.warn('w1');
  log.info('i1');
  log.debug('d1');
  const c = log.child({ where: 'restore', pid: 42 });
  c.warn('w2');
  c.debug('d2');
  log.flush();
  return readFileSync(path.join(tmp, logFile), 'utf8').split('\n').slice(0, -1);
}

describe('makeLogger', () => {
  it('text, -v4: every level, CRIU layout (time, Error/Warn prefixes naming where)', () => {
    const lines = logAll(4, 'text').map((l) => l.replace(/^\(\d{2,}\.\d{6}\) /, '(T) '));
    expect(lines).toEqual([
      '(T) Error (dump): e1',
      '(T) Warn  (dump): w1',
      '(T) i1',
      '(T) d1',
      '(T) Warn  (restore): pid=42 w2',
      '(T) pid=42 d2',
    ]);
  });

  it('text: -v2 keeps errors and warnings, -v0 nothing', () => {
    expect(logAll(2, 'text').map((l) => l.replace(/^\(\d{2,}\.\d{6}\) /, ''))).toEqual([
      'Error (dump): e1',
      'Warn  (dump): w1',
      'Warn  (restore): pid=42 w2',
    ]);
    expect(logAll(0, 'text')).toEqual([]);
  });

  it('json, -v3: pino lines with where (and the child bindings), debug left out', () => {
    const raw = logAll(3, 'json');
    // A child's where replaces its parent's; pino would write the key twice.
    expect(raw.filter((l) => l.split('"where"').length !== 2)).toEqual([]);
    const lines = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const l of lines) expect(typeof l.time).toBe('number');
    expect(lines.map(({ time: _t, ...rest }) => rest)).toEqual([
      { level: 50, where: 'dump', msg: 'e1' },
      { level: 40, where: 'dump', msg: 'w1' },
      { level: 30, where: 'dump', msg: 'i1' },
      { level: 40, where: 'restore', pid: 42, msg: 'w2' },
    ]);
  });
});
