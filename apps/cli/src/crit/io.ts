import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileKindOf, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageError, magicName } from '@criu-ts/images';

/** A stream (stdin, a pipe) bigger than this is not an image: /dev/zero behind a valid magic, say. */
const MAX_STREAM = 2 ** 31;

/**
 * crit reads stdin when -i is not given. Image readers work on regular files, so standard input
 * (or an inherited pipe given as /dev/fd/N, as <(process substitution) gives) is copied to a private
 * temporary file first; `use` gets its path. A path that is a FIFO, a device or a socket is refused
 * naming what it is: opening a FIFO would wait for a writer forever, /dev/zero never ends.
 */
export function withInputFile<T>(input: string | undefined, use: (path: string) => T): T {
  const inherited = input === undefined ? 0 : inheritedFd(input);
  if (inherited === undefined) return use(regularInput(input as string));
  const name = input ?? '<stdin>';
  const dir = mkdtempSync(join(tmpdir(), 'crit-ts-'));
  try {
    const path = join(dir, 'stdin.img');
    copyStream(inherited, path, name);
    try {
      return use(path);
    } catch (err) {
      // Name what the user gave, not our temporary copy.
      if (err instanceof ImageError && err.file === path) throw new ImageError(name, err.offset, err.reason);
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fd of /dev/fd/N, /dev/stdin or /proc/self/fd/N: read from it, as the shell handed it over. */
function inheritedFd(path: string): number | undefined {
  if (path === '/dev/stdin' || path === '-') return 0;
  const m = /^\/(?:dev|proc\/self)\/fd\/(\d+)$/.exec(path);
  return m ? Number(m[1]) : undefined;
}

/**
 * The real path of an image file named on the command line: a symlink the user names is followed
 * (the image readers follow none), and what is not a regular file is refused, named.
 */
export function regularInput(path: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return path; // let the image reader say what is wrong (missing, ...)
  }
  const st = statSync(real);
  if (!st.isFile()) throw new ImageError(path, 0, `is ${fileKindOf(st)}, not an image file: not read`);
  return real;
}

/**
 * Copies a stream to `path`, checking the magic as soon as it has arrived (so that /dev/zero or
 * random bytes on stdin are refused at once), and stopping at MAX_STREAM bytes.
 */
function copyStream(fd: number, path: string, name: string): void {
  const out = openSync(path, 'w', 0o600);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let total = 0;
    let head = Buffer.alloc(0);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // non-blocking stdin: wait a bit
          continue;
        }
        if (code === 'EOF') break;
        throw new ImageError(name, total, `cannot read: ${code ?? err}`);
      }
      if (n === 0) break;
      if (head.length < 8) {
        head = Buffer.concat([head, buf.subarray(0, Math.min(n, 8 - head.length))]);
        if (head.length === 8) checkMagic(head, name);
      }
      total += n;
      if (total > MAX_STREAM)
        throw new ImageError(name, total, `more than ${MAX_STREAM} bytes: not an image`);
      writeSync(out, buf, 0, n);
    }
  } finally {
    closeSync(out);
  }
}

function checkMagic(head: Buffer, name: string): void {
  const first = head.readUInt32LE(0);
  const value = first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC ? head.readUInt32LE(4) : first;
  if (!magicName(value))
    throw new ImageError(
      name,
      first === value ? 0 : 4,
      `unknown magic 0x${value.toString(16)} (not a CRIU image, or a raw one such as pages-N.img)`,
    );
}

export function readText(input: string | undefined): string {
  const fd = input === undefined ? 0 : inheritedFd(input);
  return readFileSync(fd ?? regularInput(input as string), 'utf8');
}

export function writeOut(output: string | undefined, text: string): void {
  if (output !== undefined) writeFileSync(output, text);
  else process.stdout.write(text);
}
