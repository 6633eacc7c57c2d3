// SQLite in WAL mode keeps its readers and writers apart with POSIX locks: every connection holds a
// shared lock on the database file and on the "dead man switch" byte of the -shm file (the wal-index,
// which it maps), and a reader in a transaction holds a read mark there too. A connection that finds
// the switch free believes it is alone: it truncates and rebuilds the -shm under the others (who then
// die of SIGBUS or read a wrong wal-index), and a checkpoint that finds no read mark overwrites what an
// open snapshot still reads. So a writer and a reader (both in the dumped tree) must come back with
// every one of their locks, on the right files, owned by the right process: another connection opened
// from outside afterwards must see them, and all three must go on working.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliKillAndRestore,
  fileLocksOf,
  PYTHON,
  procState,
  readLines,
  tempDir,
  track,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const SQLITE3 = '/usr/bin/sqlite3'; // tools/ci/setup.sh installs it

// The parent is the writer, its child the reader; each opens its own connection after the fork (SQLite
// connections must not cross a fork). Driven by SIGUSR1 (one step) and SIGTERM (the end).
const TREE_PY = `
import os, signal, sqlite3, sys
os.closerange(3, 65536)
db, report = sys.argv[1], sys.argv[2]
out = open(report, 'a', buffering=1)
say = lambda s: out.write(s + '\\n')
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGTERM])
step = lambda: signal.sigwait([signal.SIGUSR1, signal.SIGTERM]) == signal.SIGUSR1
count = lambda c: c.execute('SELECT count(*) FROM t').fetchone()[0]
child = os.fork()
c = sqlite3.connect(db, isolation_level=None)
if child == 0:
    say('READER %d %d' % (os.getpid(), count(c)))
    snap = None
    while step():
        if snap is not None:
            again = count(c)
            c.execute('COMMIT')
            say('READ %d %d %d' % (snap, again, count(c)))
        c.execute('BEGIN')
        snap = count(c)
        say('SNAP %d' % snap)
    if snap is not None: c.execute('COMMIT')
    c.close()
    os._exit(0)
say('WRITER %d %d' % (os.getpid(), count(c)))
while step():
    c.execute("INSERT INTO t(v) VALUES ('writer')")
    say('WROTE %d' % count(c))
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
c.close()
say('DONE %d' % status)
`;

/** The sqlite3 shell as another, outside connection: its output lines. */
function sql(db: string, text: string): string[] {
  return execFileSync(SQLITE3, [db, text], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('criu-ts restore: SQLite in WAL mode', () => {
  it('a writer and a reader in a snapshot keep their locks; an outside connection writes and reads beside them and nobody dies', async () => {
    const d = tempDir('criu-ts-sqlite-');
    const db = path.join(d, 'db');
    const report = path.join(d, 'report');
    const errors = path.join(d, 'stderr');
    sql(
      db,
      "PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'), ('b');",
    );
    const writer = startTraceable([PYTHON, '-c', TREE_PY, db, report], { setsid: true, stderr: errors });
    track(writer);
    const says = async (re: RegExp, pid: number) => {
      try {
        return await waitForLine(report, re, { pid });
      } catch (e) {
        throw new Error(`${(e as Error).message}\nstderr: ${fs.readFileSync(errors, 'utf8')}`);
      }
    };
    const reader = Number((await says(/^READER /, writer)).split(' ')[1]);
    track(reader);
    expect(await says(/^WRITER /, writer)).toBe(`WRITER ${writer} 2`);
    process.kill(writer, 'SIGUSR1');
    await says(/^WROTE 3$/, writer);
    process.kill(reader, 'SIGUSR1'); // a snapshot of 3 rows, held open
    await says(/^SNAP 3$/, reader);
    process.kill(writer, 'SIGUSR1'); // a 4th row the snapshot does not see: the WAL has frames past it
    await says(/^WROTE 4$/, writer);

    const before = fileLocksOf([writer, reader]);
    // Both hold the database file and the -shm switch; the reader its read mark too.
    expect(before.filter((l) => l.includes(` ${writer} `))).toHaveLength(2);
    expect(before.filter((l) => l.includes(` ${reader} `))).toHaveLength(3);
    const dir = await cliDump(writer, ['--file-locks']);
    expect(ImageDir.open(dir).messages('filelocks')).toHaveLength(5);
    await cliKillAndRestore(dir, ['--file-locks']);
    expect(fileLocksOf([writer, reader])).toEqual(before);

    // Another connection: the -shm switch is held (so it leaves the wal-index alone), it writes and
    // reads, and its checkpoint cannot pass the reader's snapshot (busy = 1).
    expect(sql(db, "INSERT INTO t(v) VALUES ('outside'); SELECT count(*) FROM t;")).toEqual(['5']);
    expect(sql(db, 'PRAGMA wal_checkpoint(TRUNCATE);')[0]).toMatch(/^1\|/);
    process.kill(writer, 'SIGUSR1');
    await says(/^WROTE 6$/, writer);
    process.kill(reader, 'SIGUSR1'); // its snapshot still has 3 rows; after it, all 6
    expect(await says(/^READ /, reader)).toBe('READ 3 3 6');
    await says(/^SNAP 6$/, reader);
    expect(sql(db, 'PRAGMA integrity_check; SELECT count(*) FROM t;')).toEqual(['ok', '6']);
    for (const pid of [writer, reader]) expect(procState(pid), `pid ${pid}`).toMatch(/^[RS]$/);

    process.kill(writer, 'SIGTERM');
    expect(await says(/^DONE /, writer)).toBe('DONE 0'); // the reader exited by itself, no signal
    expect(readLines(report).filter((l) => l.startsWith('DONE'))).toHaveLength(1);
    expect(fs.readFileSync(errors, 'utf8')).toBe('');
    expect(sql(db, 'SELECT count(*) FROM t;')).toEqual(['6']);
  });
});
