import { afterEach, describe, expect, it } from 'vitest';
import {
  ERRNO,
  errnoMessage,
  errnoName,
  isSysError,
  kill,
  O_RDONLY,
  open,
  ptraceSeize,
  SysError,
  waitpid,
} from '../src/index.js';
import { cleanup, forget, killAndReap, procState, startTarget, waitFor } from './helpers.js';

afterEach(cleanup);

describe('errno table', () => {
  it('names every errno 1..133 that Linux defines', () => {
    for (let n = 1; n <= 133; n++) {
      if (n === 41 || n === 58) continue; // unused numbers on Linux
      expect(errnoName(n), `errno ${n}`).toMatch(/^E[A-Z0-9]+$/);
    }
    expect(errnoName(1)).toBe('EPERM');
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(35)).toBe('EDEADLK');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(133)).toBe('EHWPOISON');
    expect(errnoName(512)).toBe('ERESTARTSYS');
    expect(errnoName(516)).toBe('ERESTART_RESTARTBLOCK');
    expect(errnoName(9999)).toBe('E9999');
    expect(errnoMessage(3)).toBe('No such process');
    expect(ERRNO.EWOULDBLOCK).toBe(ERRNO.EAGAIN);
    expect(ERRNO.ENOTSUP).toBe(95);
    expect(ERRNO.ENOENT).toBe(2);
  });
});

describe('SysError', () => {
  it('carries call, errno, code and a readable message', () => {
    const e = new SysError('ptrace(PTRACE_SEIZE)', 3, 'pid 1234');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('SysError');
    expect(e.call).toBe('ptrace(PTRACE_SEIZE)');
    expect(e.errno).toBe(3);
    expect(e.code).toBe('ESRCH');
    expect(e.message).toBe('ptrace(PTRACE_SEIZE, pid 1234): ESRCH (No such process)');
    expect(new SysError('close', 9, 'fd 3').message).toBe('close(fd 3): EBADF (Bad file descriptor)');
    expect(new SysError('socket', 97).message).toBe(
      'socket: EAFNOSUPPORT (Address family not supported by protocol)',
    );
  });

  it('reports ENOENT from open with the path', () => {
    expect(() => open('/nonexistent/criu-ts', O_RDONLY)).toThrowError(
      'open(/nonexistent/criu-ts): ENOENT (No such file or directory)',
    );
  });

  it('reports ESRCH for a pid that is dead and reaped', async () => {
    const pid = startTarget(['/bin/sleep', '1000']);
    await waitFor(() => procState(pid) !== undefined, 'sleep to exist');
    kill(pid, 9);
    const st = waitpid(pid);
    forget(pid);
    expect(st?.signaled).toBe(true);
    expect(st?.termSignal).toBe(9);

    let err: unknown;
    try {
      ptraceSeize(pid);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect(isSysError(err, 'ESRCH')).toBe(true);
    const se = err as SysError;
    expect(se.call).toBe('ptrace(PTRACE_SEIZE)');
    expect(se.errno).toBe(3);
    expect(se.message).toBe(`ptrace(PTRACE_SEIZE, pid ${pid}): ESRCH (No such process)`);
    expect(() => kill(pid, 0)).toThrowError(/^kill\(pid \d+, signal 0\): ESRCH/);
  });

  it('reports ECHILD from waitpid on a pid that is not our child', () => {
    const pid = startTarget(['/bin/sleep', '1000']);
    killAndReap(pid);
    expect(() => waitpid(pid)).toThrowError(/^waitpid\(pid \d+\): ECHILD/);
  });
});
