// Linux native AIO contexts (io_setup(2)): the kernel maps a ring for each one, a shared mapping of an
// anonymous file that /proc/PID/maps shows as "/[aio] (deleted)"; the context id is the ring's address.
// Dump records each ring as CRIU does (mm.proto AioRingEntry): its address (id), its length, and the
// nr_events that io_setup was asked for (estimated back from the length); the ring's pages go whole into
// pages-N.img like other memory. Restore (restore.ts here) asks io_setup for a ring of that size in the
// task, moves the kernel's tail to where it was, copies the events and mremaps the new ring onto the old
// address, which makes its address the context id again.
//
// Requests still in flight at dump cannot come back: the kernel offers no way to see them from outside
// (CRIU does not wait for them either, see parasite_check_aios' "XXX: wait aio completion"); the rule
// CRIU applies, and criu-ts with it, is that every ring must look as the kernel made it.
import type { AioRingEntry } from '@criu-ts/images';
import {
  AIO_RING_COMPAT_FEATURES,
  AIO_RING_HEADER_SIZE,
  AIO_RING_INCOMPAT_FEATURES,
  AIO_RING_MAGIC,
  aioRingEvents,
  PAGE_SIZE,
  parseAioRingHeader,
  vmRead,
} from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { type DumpVma, VMA } from '../mm/vmas.js';

const PAGE = BigInt(PAGE_SIZE);

/**
 * The nr_events io_setup was called with, from a ring of `len` bytes (CRIU's aio_estimate_nr_reqs). The
 * kernel takes max(nr, 4 * CPUs), doubles it, adds 2, rounds the ring up to pages and gives the ring as
 * many events as fit: asking (fit - 2) / 2 again gives a ring of the same size.
 */
export function aioNrReqs(len: bigint): number {
  return Math.floor((aioRingEvents(len) - 2) / 2);
}

/**
 * The AIO rings of a task for mm-PID.img, in VMA order. Each ring's header is read from the (frozen) task
 * and must be what the kernel made (CRIU's sane_ring); otherwise the dump is refused in CRIU's words.
 */
export function dumpAioRings(pid: number, vmas: readonly DumpVma[]): AioRingEntry[] {
  const out: AioRingEntry[] = [];
  for (const { entry } of vmas) {
    if (!(entry.status & VMA.AREA_AIORING)) continue;
    const i = out.length;
    const len = entry.end - entry.start;
    const failed = (why: string) =>
      new DumpError(
        `Failed to check aio rings (pid: ${pid}): ring #${i} at ${entry.start.toString(16)}-${entry.end.toString(16)}: ${why}`,
      );
    if (len % PAGE !== 0n) throw failed('Ring size is not aligned');
    const nrReq = aioNrReqs(len);
    if (nrReq <= 0) throw failed(`a ring of ${len} bytes is too small`);
    const buf = Buffer.alloc(AIO_RING_HEADER_SIZE);
    let got: number;
    try {
      got = vmRead(pid, entry.start, buf);
    } catch (e) {
      throw failed(`cannot read its header: ${(e as Error).message}`);
    }
    if (got !== buf.length) throw failed(`read ${got} of ${buf.length} bytes of its header`);
    const h = parseAioRingHeader(buf);
    const nr = aioRingEvents(len);
    const sane =
      h.magic === AIO_RING_MAGIC &&
      h.compatFeatures === AIO_RING_COMPAT_FEATURES &&
      h.incompatFeatures === AIO_RING_INCOMPAT_FEATURES &&
      h.headerLength === AIO_RING_HEADER_SIZE &&
      h.nr === nr;
    // What restore needs too (CRIU's restorer checks it there: "wrong aio"): head and tail in the ring.
    if (!sane || h.head >= h.nr || h.tail >= h.nr)
      throw failed(
        `Not valid ring #${i} (magic ${h.magic.toString(16)}, cf ${h.compatFeatures}, if ${h.incompatFeatures}, ` +
          `header size ${h.headerLength} (${AIO_RING_HEADER_SIZE}), nr ${h.nr} (${nr}), head ${h.head}, tail ${h.tail})`,
      );
    out.push({ id: entry.start, nr_req: nrReq, ring_len: Number(len) });
  }
  return out;
}
