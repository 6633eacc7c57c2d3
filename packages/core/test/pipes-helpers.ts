// Helpers for the pipe and FIFO tests: python3 programs that keep bytes in flight, and looks at a pipe
// from outside (its size, how many bytes wait in it, a description's flags) that take nothing from it.
import fs from 'node:fs';
import {
  close,
  F_GETPIPE_SZ,
  FIONREAD,
  fcntl,
  ioctlGetInt,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  open,
} from '@criu-ts/sys';

/** The check value the pipeline's filter adds to each number, and its consumer verifies. */
const CHECK = 'n * 2654435761 % 1000003';

/** Writes 1, 2, 3, ... one per line, as fast as its pipe takes them. */
export const PRODUCER_PY = `
import sys
out = sys.stdout.buffer
n = 0
while True:
    n += 1
    out.write(b'%d\\n' % n)
`;

/** Turns each line "n" into "n:check". */
export const FILTER_PY = `
import sys
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    n = int(line)
    out.write(b'%d:%d\\n' % (n, ${CHECK}))
`;

/**
 * A slow consumer (about 20000 lines a second, far slower than the other two, so both pipes stay
 * full): every line must be the next number with the right check value, else FAIL. Writes OK <n>
 * every 10000 lines to its report (argv[1]).
 */
export const CONSUMER_PY = `
import os, sys, time
out = open(sys.argv[1], 'a', buffering=1)
out.write('READY %d\\n' % os.getpid())
expect = 1
for line in sys.stdin.buffer:
    try:
        a, b = line.split(b':')
        n, c = int(a), int(b)
    except ValueError:
        out.write('FAIL bad line %r after %d\\n' % (line, expect - 1))
        sys.exit(1)
    if n != expect or c != ${CHECK}:
        out.write('FAIL got %r, expected %d\\n' % (line, expect))
        sys.exit(1)
    if n % 10000 == 0:
        out.write('OK %d\\n' % n)
    if n % 200 == 0:
        time.sleep(0.01)
    expect += 1
out.write('FAIL end of input after %d\\n' % (expect - 1))
`;

/** Bytes both sides of the two-way test agree on. */
const PATTERN = 'def pattern(n, seed): return bytes((i * seed + i // 251) & 0xff for i in range(n))';

/**
 * Parent and child with a pipe each way. The parent sets the parent->child pipe to 1 MiB and writes
 * P2C bytes into it; the child writes C2P bytes the other way; the parent's read end is O_NONBLOCK.
 * Nobody reads until the file argv[2] exists. Then each side reads to EOF and reports what it got
 * (EOF only comes when every other copy of the write end is closed).
 */
export const TWO_WAY_PY = `
import fcntl, os, sys, time
${PATTERN}
out = open(sys.argv[1], 'a', buffering=1)
go = sys.argv[2]
P2C, C2P = 300000, 5000
p2c_r, p2c_w = os.pipe()
c2p_r, c2p_w = os.pipe()
fcntl.fcntl(p2c_w, fcntl.F_SETPIPE_SZ, 1 << 20)
def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)
pid = os.fork()
if pid == 0:
    os.close(p2c_w); os.close(c2p_r)
    os.write(c2p_w, pattern(C2P, 7))
    out.write('CHILD %d p2c_r=%d c2p_w=%d\\n' % (os.getpid(), p2c_r, c2p_w))
    wait_go()
    os.close(c2p_w)
    data = b''
    while True:
        b = os.read(p2c_r, 65536)
        if not b:
            break
        data += b
    out.write('CHILD GOT %d %s\\n' % (len(data), 'same' if data == pattern(P2C, 3) else 'DIFFERENT'))
    os._exit(0)
os.close(p2c_r); os.close(c2p_w)
os.set_blocking(c2p_r, False)
n = os.write(p2c_w, pattern(P2C, 3))
out.write('PARENT %d p2c_w=%d c2p_r=%d wrote=%d\\n' % (os.getpid(), p2c_w, c2p_r, n))
wait_go()
nonblock = not os.get_blocking(c2p_r)
size = fcntl.fcntl(p2c_w, fcntl.F_GETPIPE_SZ)
data = b''
while True:
    try:
        b = os.read(c2p_r, 65536)
    except BlockingIOError:
        time.sleep(0.01)
        continue
    if not b:
        break
    data += b
out.write('PARENT GOT %d %s nonblock=%s size=%d\\n' % (len(data), 'same' if data == pattern(C2P, 7) else 'DIFFERENT', nonblock, size))
os.close(p2c_w)
_, status = os.waitpid(pid, 0)
out.write('CHILD EXIT %d\\n' % status)
`;

/**
 * Two tasks and the FIFO argv[2]: the child opens it for writing and writes 1000 bytes, the parent
 * opens it for reading and reads nothing until the file argv[3] exists. Then the child writes "MORE"
 * and exits; the parent reads to EOF and reports.
 */
export const FIFO_PY = `
import os, sys, time
${PATTERN}
out = open(sys.argv[1], 'a', buffering=1)
fifo, go = sys.argv[2], sys.argv[3]
def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)
pid = os.fork()
if pid == 0:
    w = os.open(fifo, os.O_WRONLY)
    os.write(w, pattern(1000, 5))
    out.write('CHILD %d w=%d\\n' % (os.getpid(), w))
    wait_go()
    os.write(w, b'MORE')
    os._exit(0)
r = os.open(fifo, os.O_RDONLY)
out.write('PARENT %d r=%d\\n' % (os.getpid(), r))
wait_go()
data = b''
while True:
    b = os.read(r, 65536)
    if not b:
        break
    data += b
out.write('PARENT GOT %d %s\\n' % (len(data), 'same' if data == pattern(1000, 5) + b'MORE' else 'DIFFERENT'))
_, status = os.waitpid(pid, 0)
out.write('CHILD EXIT %d\\n' % status)
`;

/**
 * The parent keeps the read end; its child (the tree a test dumps) holds only the write end, with
 * N = argv[3] bytes written. Nobody reads until the file argv[2] exists; then the child exits and
 * the parent reads to EOF.
 */
export const WRITER_CHILD_PY = `
import os, sys, time
${PATTERN}
out = open(sys.argv[1], 'a', buffering=1)
go, size = sys.argv[2], int(sys.argv[3])
def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, pattern(size, 11))
    out.write('CHILD %d w=%d\\n' % (os.getpid(), w))
    wait_go()
    os._exit(0)
os.close(w)
wait_go()
data = b''
while True:
    b = os.read(r, 65536)
    if not b:
        break
    data += b
out.write('PARENT GOT %d %s\\n' % (len(data), 'same' if data == pattern(size, 11) else 'DIFFERENT'))
`;

/** Size and queued bytes of the pipe behind /proc/PID/fd/FD, through a new read end (takes nothing). */
export function pipeFromOutside(pid: number, fd: number): { size: number; queued: number } {
  const r = open(`/proc/${pid}/fd/${fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  try {
    return { size: fcntl(r, F_GETPIPE_SZ), queued: ioctlGetInt(r, FIONREAD) };
  } finally {
    close(r);
  }
}

/** The flags line of /proc/PID/fdinfo/FD. */
export function fdFlags(pid: number, fd: number): number {
  const text = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  return Number.parseInt(/^flags:\s+([0-7]+)/m.exec(text)![1]!, 8);
}

/** The inode number of the file behind /proc/PID/fd/FD. */
export const inodeOf = (pid: number, fd: number): number => Number(fs.statSync(`/proc/${pid}/fd/${fd}`).ino);

/** `KEY=N` fields of a report line. */
export function fields(line: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of line.matchAll(/(\w+)=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}
