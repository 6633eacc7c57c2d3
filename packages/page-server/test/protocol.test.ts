// The page-server protocol between criu-ts's own client and server, and hostile streams sent by hand:
// headers of both layouts, each run's data, the answers a CRIU client waits for, and no image left behind
// by a session that breaks off.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PageMap } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  detectLayout,
  encodeDstId,
  encodeHeader,
  type HeaderLayout,
  PageServerClient,
  PageServerError,
  PageServerListener,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  PS_IOV_ADD_F,
  PS_IOV_CLOSE,
  PS_IOV_GET,
  PS_IOV_OPEN2,
  PS_IOV_PARENT,
  type ReceiveResult,
  receivePages,
} from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'page-server-test-'));
  dirs.push(d);
  return d;
}

/** A page whose bytes say which page it is. */
function page(tag: number): Buffer {
  const b = Buffer.alloc(4096);
  for (let i = 0; i < 4096; i += 4) b.writeUInt32LE((tag * 4096 + i) >>> 0, i);
  return b;
}

/** A server on a free port receiving one session into `dir`; its result or its error. */
async function serveOnce(dir: string, layout: HeaderLayout | 'auto' = 'auto') {
  const listener = await PageServerListener.listen({ host: '127.0.0.1', port: 0 });
  const result = (async (): Promise<ReceiveResult> => {
    const s = await listener.accept();
    listener.close();
    return receivePages(s, { dir, layout });
  })();
  // Keep a rejection from being unhandled before the test looks at it.
  result.catch(() => undefined);
  return { port: listener.port, result };
}

/** Connects a raw socket, collecting what the server answers. */
async function rawConnect(port: number): Promise<{ s: Socket; answers: () => Buffer }> {
  const s = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.on('error', () => undefined);
  return { s, answers: () => Buffer.concat(got) };
}

const hdr = (
  layout: HeaderLayout,
  op: number,
  flags: number,
  nrPages: bigint,
  vaddr: bigint,
  dstId: bigint,
) => encodeHeader(layout, { op, flags, nrPages, vaddr, dstId });

describe.each(['criu-4.2', 'criu-4.1'] as const)('client to server, %s headers', (layout) => {
  it('writes pagemaps and pages the images package reads back, in address order', async () => {
    const dir = tempDir();
    const { port, result } = await serveOnce(dir);
    const c = await PageServerClient.connect({ host: '127.0.0.1', port, layout });
    const t = await c.open('task', 4242);
    expect(t.hasParent).toBe(false);
    t.addPresent(0x10000n, 2);
    t.addParent(0x20000n, 3);
    t.addPresent(0x30000n, 1);
    t.add(0x40000n, 5, PE_LAZY);
    // The data of both present runs in one buffer, and in pieces across the runs' boundary.
    const data = Buffer.concat([page(1), page(2), page(3)]);
    await t.writeDataAsync(data.subarray(0, 5000));
    t.writeData(data.subarray(5000));
    const shm = await c.open('shmem', 77);
    shm.addPresent(0n, 1, page(9));
    await c.close();
    const r = await result;
    expect(r.layout).toBe(layout);
    expect(r.pages).toBe(4n);
    expect(r.pagemaps.map((p) => [p.pagemap, p.pages])).toEqual([
      ['pagemap-4242.img', 'pages-65537.img'],
      ['pagemap-shmem-77.img', 'pages-65538.img'],
    ]);
    expect(readdirSync(dir).sort()).toEqual([
      'pagemap-4242.img',
      'pagemap-shmem-77.img',
      'pages-65537.img',
      'pages-65538.img',
    ]);
    const pm = PageMap.forTask(dir, 4242);
    expect(pm.pagesId).toBe(0x10001);
    expect(pm.runs.map((x) => [x.vaddr, x.pages, x.flags])).toEqual([
      [0x10000n, 2n, PE_PRESENT],
      [0x20000n, 3n, PE_PARENT],
      [0x30000n, 1n, PE_PRESENT],
      [0x40000n, 5n, PE_LAZY],
    ]);
    expect(pm.readPage(0x11000n)).toEqual(page(2));
    expect(pm.readPage(0x30000n)).toEqual(page(3));
    pm.close();
    const sm = PageMap.forShmem(dir, 77);
    expect(sm.readPage(0n)).toEqual(page(9));
    sm.close();
  });

  it('answers OPEN2 and PARENT from the parent directory', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'parent'));
    writeFileSync(join(dir, 'parent', 'pagemap-10.img'), '');
    const { port, result } = await serveOnce(dir);
    const c = await PageServerClient.connect({ host: '127.0.0.1', port, layout });
    expect(await c.hasParent('task', 10)).toBe(true);
    expect(await c.hasParent('task', 11)).toBe(false);
    expect((await c.open('task', 10)).hasParent).toBe(true);
    expect((await c.open('task', 11)).hasParent).toBe(false);
    await c.close();
    expect((await result).pagemaps).toHaveLength(2);
  });
});

describe('header layouts', () => {
  it('are told apart from the first header', () => {
    const dst = encodeDstId('task', 1234);
    for (const op of [PS_IOV_OPEN2, PS_IOV_PARENT]) {
      expect(detectLayout(hdr('criu-4.2', op, 0, 0n, 0n, dst))).toBe('criu-4.2');
      expect(detectLayout(hdr('criu-4.1', op, 0, 0n, 0n, dst))).toBe('criu-4.1');
    }
    expect(detectLayout(hdr('criu-4.1', PS_IOV_CLOSE, 0, 0n, 0n, 0n))).toBeUndefined();
  });

  it('a 4.2 session with no memory (CLOSE first) is answered and complete', async () => {
    const dir = tempDir();
    const { port, result } = await serveOnce(dir);
    const { s, answers } = await rawConnect(port);
    s.write(hdr('criu-4.2', PS_IOV_CLOSE, 0, 0n, 0n, 0n));
    await expect.poll(() => answers().length).toBe(4);
    expect(answers().readInt32LE(0)).toBe(0);
    s.end();
    expect((await result).pagemaps).toEqual([]);
  });

  it('a run longer than 4.1 headers carry is sent in pieces', async () => {
    const dir = tempDir();
    const { port, result } = await serveOnce(dir);
    const c = await PageServerClient.connect({ host: '127.0.0.1', port, layout: 'criu-4.1' });
    const t = await c.open('task', 5);
    t.addParent(0n, 0x1_0000_0002n);
    await c.close();
    await result;
    const pm = PageMap.forTask(dir, 5);
    expect(pm.runs.map((x) => [x.vaddr, x.pages])).toEqual([
      [0n, 0xffff_ffffn],
      [0xffff_ffffn * 4096n, 3n],
    ]);
    pm.close();
  });
});

describe('bad input', () => {
  const layout = 'criu-4.2';
  const dst = encodeDstId('task', 99);

  /** Sends `bytes` (then closes the connection unless `keep`), expects the session to fail with `message`. */
  async function refused(bytes: Buffer, message: RegExp, keep = false) {
    const dir = tempDir();
    const { port, result } = await serveOnce(dir);
    const { s } = await rawConnect(port);
    s.write(bytes);
    if (!keep) s.end();
    await expect(result).rejects.toThrow(PageServerError);
    await expect(result).rejects.toThrow(message);
    s.destroy();
    // Nothing left behind: no image, no staging directory.
    expect(readdirSync(dir)).toEqual([]);
  }

  const open = hdr(layout, PS_IOV_OPEN2, 0, 0n, 0n, dst);

  it('a stream truncated in page data', async () => {
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, PE_PRESENT, 2n, 0x1000n, dst), page(1)]),
      /closed before CLOSE \(4096 bytes of page data missing\)/,
    );
  });

  it('a stream truncated in a header', async () => {
    await refused(
      Buffer.concat([open, open.subarray(0, 10)]),
      /closed before CLOSE \(in a header \(10 of 32 bytes\)\)/,
    );
  });

  it('a peer that goes away between commands', async () => {
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, PE_PARENT, 2n, 0x1000n, dst)]),
      /closed before CLOSE/,
    );
  });

  it('an unknown command', async () => {
    await refused(Buffer.concat([open, hdr(layout, 0x77, 0, 0n, 0n, dst)]), /Unknown command 119/, true);
  });

  it('a page count that does not fit', async () => {
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, PE_PRESENT, 1n << 60n, 0x1000n, dst)]),
      /pages do not fit/,
      true,
    );
  });

  it('unknown page flags, an unaligned or backwards run, an unknown pagemap type', async () => {
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, 0x40, 1n, 0x1000n, dst)]),
      /unknown page flags 0x40/,
      true,
    );
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, PE_PARENT, 1n, 0x1001n, dst)]),
      /not page-aligned/,
      true,
    );
    await refused(
      Buffer.concat([
        open,
        hdr(layout, PS_IOV_ADD_F, PE_PARENT, 4n, 0x4000n, dst),
        hdr(layout, PS_IOV_ADD_F, PE_PARENT, 1n, 0x5000n, dst),
      ]),
      /overlaps or precedes/,
      true,
    );
    await refused(hdr(layout, PS_IOV_OPEN2, 0, 0n, 0n, (5n << 8n) | 9n), /unknown pagemap type 9/, true);
  });

  it('GET (lazy pages) is refused by name', async () => {
    await refused(
      Buffer.concat([open, hdr(layout, PS_IOV_GET, 0, 1n, 0x1000n, dst)]),
      /GET: lazy pages/,
      true,
    );
  });

  it('a client whose connection breaks mid-dump leaves nothing on the server', async () => {
    const dir = tempDir();
    const { port, result } = await serveOnce(dir);
    const c = await PageServerClient.connect({ host: '127.0.0.1', port });
    const t = await c.open('task', 1);
    t.addPresent(0x1000n, 4, Buffer.concat([page(1), page(2)]));
    c.destroy();
    await expect(result).rejects.toThrow(/closed before CLOSE/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the client reports a server that goes away', async () => {
    const listener = await PageServerListener.listen({ host: '127.0.0.1' });
    const accepted = listener.accept();
    const c = await PageServerClient.connect({ host: '127.0.0.1', port: listener.port });
    (await accepted).destroy();
    listener.close();
    await expect(c.open('task', 1)).rejects.toThrow(/page server/);
  });

  it('images already in the directory stay until a session is complete', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'pagemap-99.img'), 'old');
    await expect(
      (async () => {
        const { port, result } = await serveOnce(dir);
        const { s } = await rawConnect(port);
        s.end(Buffer.concat([open, hdr(layout, PS_IOV_ADD_F, PE_PRESENT, 1n, 0x1000n, dst)]));
        return result;
      })(),
    ).rejects.toThrow(/page data missing/);
    expect(readdirSync(dir)).toEqual(['pagemap-99.img']);
  });
});
