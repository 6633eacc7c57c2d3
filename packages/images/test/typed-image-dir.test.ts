// ImageDir's reads and writes are typed by the image's file name pattern (ImageTypes, generated
// with the codecs from proto/images/image-kinds.json). The `@ts-expect-error` lines are the proof
// that a wrong message, a wrong blob or a missing id does not compile: `pnpm run typecheck` fails
// when one of them compiles after all. They sit in a function that is never run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  type CoreEntry,
  type EntriesOf,
  type ExtraOf,
  type FdinfoEntry,
  IMAGE_KINDS,
  IMAGE_NAMES,
  ImageDir,
  type ImageEntry,
  type ImagePattern,
  type MessageOf,
  type PagemapEntry,
  type PagemapHead,
  type PipeDataEntry,
  type TcpQueues,
  type TcpStreamEntry,
} from '../src/index.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-typed-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Wrong calls: each must be a compile error (checked by tsc, never run). */
function wrongCalls(dir: ImageDir, pipe: PipeDataEntry, core: CoreEntry, fdinfo: FdinfoEntry): void {
  // @ts-expect-error a pipe_data_entry is not a core_entry
  dir.write('core-%u', 1, [pipe]);
  // @ts-expect-error an fdinfo_entry is not a pstree_entry
  dir.write('pstree', undefined, [fdinfo]);
  // @ts-expect-error a field core_entry does not have
  dir.write('core-%u', 1, [{ ...core, pipe_id: 3 }]);
  // @ts-expect-error core-%u needs an id
  dir.write('core-%u', undefined, [core]);
  // @ts-expect-error files takes none
  dir.write('files', 1, []);
  // @ts-expect-error pipes-data blobs are bytes, not TCP queues
  dir.write('pipes-data', undefined, [pipe], [{ inq: Buffer.alloc(0), outq: Buffer.alloc(0) }]);
  // @ts-expect-error a pagemap starts with its head
  dir.write('pagemap-%lu', 1, [{ vaddr: 0n, compat_nr_pages: 1 }]);
  // @ts-expect-error not an image CRIU writes
  dir.write('cores-%u', 1, [core]);
  // @ts-expect-error a raw image has no entries to write
  dir.write('pages-%u', 1, []);
  const pattern: string = 'core-%u';
  // @ts-expect-error a pattern known only at run time goes through dir.untyped
  dir.write(pattern, 1, [core]);
  // @ts-expect-error core-%u needs an id
  dir.one('core-%u');
  // @ts-expect-error an fdinfo image does not hold core entries
  dir.messages<CoreEntry>('fdinfo-%u', 1);
  // @ts-expect-error a core_entry has no pipe_id
  dir.messages<{ pipe_id: number }>('core-%u', 1);
  // @ts-expect-error read() gives fdinfo entries, not core entries
  const cores: CoreEntry[] = dir.messages('fdinfo-%u', 1);
  // @ts-expect-error the writer of core-%u takes core entries
  dir.writer('core-%u', 1).write(fdinfo);
  void cores;
}

describe('ImageDir typed by image kind', () => {
  it('maps every image with entries to its message, entries and blob types', () => {
    expectTypeOf<MessageOf<'core-%u'>>().toEqualTypeOf<CoreEntry>();
    expectTypeOf<MessageOf<'fdinfo-%u'>>().toEqualTypeOf<FdinfoEntry>();
    expectTypeOf<EntriesOf<'pagemap-%lu'>>().toEqualTypeOf<readonly [PagemapHead, ...PagemapEntry[]]>();
    expectTypeOf<ExtraOf<'pipes-data'>>().toEqualTypeOf<Buffer>();
    expectTypeOf<ExtraOf<'tcp-stream-%x'>>().toEqualTypeOf<TcpQueues>();
    expectTypeOf<ExtraOf<'ipcns-sem-%u'>>().toEqualTypeOf<number[]>();
    expectTypeOf<ExtraOf<'core-%u'>>().toBeNever();
    // Every image of the run-time table that has a magic has a kind (its entry format), and each
    // pattern of the type map is one of them.
    const withEntries = IMAGE_NAMES.filter((n) => n.magic !== 'RAW');
    expect(withEntries.filter((n) => n.magic === 'RAW' || !IMAGE_KINDS[n.magic])).toEqual([]);
    const sample: ImagePattern[] = ['inventory', 'core-%u', 'pagemap-shmem-%lu', 'tcp-stream-%x', 'stats-%s'];
    expect(sample.every((p) => withEntries.some((n) => n.pattern === p))).toBe(true);
    expect(typeof wrongCalls).toBe('function');
  });

  it('writes and reads back typed messages and blobs, without casts', () => {
    const dir = ImageDir.create(tmp);
    const pipes: PipeDataEntry[] = [
      { pipe_id: 7, bytes: 3 },
      { pipe_id: 8, bytes: 0, size: 65536 },
    ];
    dir.write('pipes-data', undefined, pipes, [Buffer.from('abc'), Buffer.alloc(0)]);
    const entries = dir.read('pipes-data');
    expectTypeOf(entries).toEqualTypeOf<ImageEntry<PipeDataEntry, Buffer>[]>();
    expect(entries.map((e) => [e.message.pipe_id, e.extra?.toString()])).toEqual([
      [7, 'abc'],
      [8, ''],
    ]);

    const tcp: TcpStreamEntry = {
      inq_len: 2,
      inq_seq: 1,
      outq_len: 1,
      outq_seq: 9,
      opt_mask: 0,
      snd_wscale: 7,
      mss_clamp: 1460,
    };
    dir.write('tcp-stream-%x', 0xabc, [tcp], [{ inq: Buffer.from('hi'), outq: Buffer.from('!') }]);
    expect(dir.has('tcp-stream-%x', 0xabc)).toBe(true);
    const [got] = dir.read('tcp-stream-%x', 0xabc);
    expect(got?.message.inq_seq).toBe(1);
    expect(got?.extra?.inq.toString()).toBe('hi');
    expect(got?.extra?.outq.toString()).toBe('!');

    dir.write('pagemap-%lu', 5, [{ pages_id: 1 }, { vaddr: 0x1000n, compat_nr_pages: 0, nr_pages: 2n }]);
    const [head, ...runs] = dir.messages('pagemap-%lu', 5);
    expectTypeOf(head).toEqualTypeOf<PagemapHead | PagemapEntry | undefined>();
    expect(head).toEqual({ pages_id: 1 });
    expect(runs).toEqual([{ vaddr: 0x1000n, compat_nr_pages: 0, nr_pages: 2n }]);

    // An explicit view type is allowed when the kind's message is assignable to it.
    const sizes = dir.messages<{ pipe_id: number; size?: number }>('pipes-data').map((p) => p.size);
    expect(sizes).toEqual([undefined, 65536]);
  });

  it('reads and writes a pattern known only at run time through dir.untyped', () => {
    const dir = ImageDir.create(tmp);
    const pattern: string = ['fifo', 'data'].join('-');
    dir.untyped.write(pattern, undefined, [{ pipe_id: 1, bytes: 1 }], [Buffer.from('x')]);
    expect(dir.untyped.read(pattern).map((e) => e.message)).toEqual([{ pipe_id: 1, bytes: 1 }]);
    expect(dir.messages('fifo-data')).toEqual([{ pipe_id: 1, bytes: 1 }]);
  });
});
