// AIO rings at restore, in the task (see dump.ts for what the images hold). mm.ts maps each ring's VMA as
// anonymous memory first and fills it from the images like any other; once every VMA is in place, for
// each ring:
//   1. io_setup(nr_req) in the task gives a new context with a ring of the same size somewhere else;
//   2. the kernel keeps the tail (where the next completion goes) to itself: requests that complete at
//      once (reads of /dev/null) move it, the ring's head (which the task owns) following, until it is
//      where it was, wrapping once when the tail was behind the head (as CRIU's restorer does);
//   3. the events are copied from the old ring into the new one (the header stays the kernel's: its id
//      is the kernel's index of the new context);
//   4. mremap moves the new ring onto the old address (replacing the copy there): the kernel makes the
//      ring's new address the context id, so the id the task kept works again.
import { readProcMem, writeProcMem } from '@criu-ts/compel';
import type { MmEntry, VmaEntry } from '@criu-ts/images';
import {
  AIO_RING_HEADER_SIZE,
  aioRingEvents,
  IOCB_CMD_PREAD,
  iocb,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_READ,
  PROT_WRITE,
  parseAioRingHeader,
  SYS,
} from '@criu-ts/sys';
import { VMA } from '../mm/vmas.js';
import { RestoreError } from '../restore/errors.js';
import type { Injector } from '../restore/inject.js';

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** Pointers to the one iocb passed to one io_submit at most (the rest goes in the next call). */
const SUBMIT_MAX = 1024;

/** The rings of mm-PID.img, each with its VMA; throws when the two disagree. */
export function aioRingsOf(pid: number, mm: MmEntry): Array<{ vma: VmaEntry; nrReq: number; len: bigint }> {
  const what = `mm-${pid}.img`;
  const vmas = (mm.vmas ?? []).filter((v) => v.status & VMA.AREA_AIORING);
  const byId = new Map<bigint, { nr_req: number; ring_len: number }>();
  for (const a of mm.aios ?? []) {
    if (byId.has(a.id)) throw new RestoreError(`${what}: AIO ring ${hex(a.id)} twice`);
    byId.set(a.id, a);
  }
  const out = vmas.map((vma) => {
    const a = byId.get(vma.start);
    if (!a) throw new RestoreError(`${what}: the AIO ring VMA at ${hex(vma.start)} has no aios entry`);
    const len = vma.end - vma.start;
    if (BigInt(a.ring_len) !== len)
      throw new RestoreError(`${what}: AIO ring ${hex(vma.start)} is ${a.ring_len} bytes, its VMA ${len}`);
    if (vma.status !== VMA.AREA_AIORING)
      throw new RestoreError(`${what}: AIO ring ${hex(vma.start)} has status 0x${vma.status.toString(16)}`);
    if (a.nr_req <= 0)
      throw new RestoreError(`${what}: AIO ring ${hex(vma.start)} asks for ${a.nr_req} events`);
    byId.delete(vma.start);
    return { vma, nrReq: a.nr_req, len };
  });
  for (const id of byId.keys()) throw new RestoreError(`${what}: AIO ring ${hex(id)} has no VMA`);
  return out;
}

export interface AioContext {
  /** The helper pidfd (of criu-ts) in the task. */
  pidfd: number;
  /** Where pidfd_getfd puts a file in the task for a moment. */
  freeFd: number;
  /** criu-ts's fd of /dev/null (read-only: a read of it completes at once with 0 bytes). */
  devNull: () => number;
}

/** Make every AIO ring of the task again, at its address (after all VMAs are mapped and filled). */
export function restoreAioRings(inj: Injector, pid: number, mm: MmEntry, ctx: AioContext): void {
  for (const ring of aioRingsOf(pid, mm)) {
    try {
      restoreRing(inj, pid, ring.vma, ring.nrReq, ring.len, ctx);
    } finally {
      inj.resetData();
    }
  }
}

function restoreRing(
  inj: Injector,
  pid: number,
  vma: VmaEntry,
  nrReq: number,
  len: bigint,
  ctx: AioContext,
): void {
  const what = `pid ${pid}: AIO ring ${hex(vma.start)}`;
  // The old ring, as the images filled it in (its VMA may be read-only: /proc/PID/mem reads it anyway).
  const old = Buffer.alloc(Number(len));
  if (readProcMem(pid, vma.start, old) !== old.length)
    throw new RestoreError(`${what}: cannot read its copy`);
  const oldHdr = parseAioRingHeader(old);

  const idOut = inj.reserve(8);
  inj.call(`${what}: io_setup(${nrReq})`, SYS.io_setup, nrReq, idOut);
  const ring = inj.read(idOut, 8).readBigUInt64LE(0);
  const hdrBuf = Buffer.alloc(AIO_RING_HEADER_SIZE);
  if (readProcMem(pid, ring, hdrBuf) !== hdrBuf.length)
    throw new RestoreError(`${what}: cannot read the new ring`);
  const fresh = parseAioRingHeader(hdrBuf);
  const expect = aioRingEvents(len);
  const { head, tail } = oldHdr;
  // CRIU's restorer words ("wrong aio"): a new ring of another size cannot take the old one's place.
  if (tail >= oldHdr.nr || head >= oldHdr.nr || oldHdr.nr !== expect || fresh.nr !== oldHdr.nr)
    throw new RestoreError(
      `${what}: wrong aio: tail=${tail.toString(16)} head=${head.toString(16)} req=${nrReq.toString(16)} ` +
        `old_nr=${oldHdr.nr.toString(16)} new_nr=${fresh.nr.toString(16)} expect=${expect.toString(16)}`,
    );

  if (head !== 0 || tail !== 0) moveTail(inj, pid, ring, fresh.nr, head, tail, ctx, what);

  // Events after the header; then the ring takes the old one's place.
  const events = old.subarray(AIO_RING_HEADER_SIZE);
  if (writeProcMem(pid, ring + BigInt(AIO_RING_HEADER_SIZE), events) !== events.length)
    throw new RestoreError(`${what}: cannot copy its events`);
  const at = inj.call(
    `${what}: mremap of the new ring from ${hex(ring)}`,
    SYS.mremap,
    ring,
    len,
    len,
    MREMAP_MAYMOVE | MREMAP_FIXED,
    vma.start,
  );
  if (BigInt.asUintN(64, at) !== vma.start)
    throw new RestoreError(`${what}: the new ring landed at ${hex(at)}`);
  if (vma.prot !== (PROT_READ | PROT_WRITE))
    inj.call(`${what}: mprotect`, SYS.mprotect, vma.start, len, vma.prot);
}

/**
 * Completes requests in the new ring (reads of /dev/null) until the kernel's tail is `tail`, setting the
 * ring's head (as io_getevents would) so that no more than the ring holds are ever pending: `tail`
 * requests, or a whole turn more when the tail was behind the head.
 */
function moveTail(
  inj: Injector,
  pid: number,
  ring: bigint,
  nr: number,
  head: number,
  tail: number,
  ctx: AioContext,
  what: string,
): void {
  const count = tail < head ? nr + tail : tail;
  const perCall = Math.min(count, nr - 1, SUBMIT_MAX);
  const fdOut = inj.call(`${what}: pidfd_getfd of /dev/null`, SYS.pidfd_getfd, ctx.pidfd, ctx.devNull(), 0);
  if (fdOut !== BigInt(ctx.freeFd))
    throw new RestoreError(`${what}: /dev/null came as fd ${fdOut}, not ${ctx.freeFd}`);
  try {
    const buf = inj.reserve(8);
    const cb = inj.put(iocb(IOCB_CMD_PREAD, ctx.freeFd, buf, 1));
    const list = Buffer.alloc(perCall * 8);
    for (let i = 0; i < perCall; i++) list.writeBigUInt64LE(cb, i * 8);
    const cbs = inj.put(list);
    const headAt = ring + 8n; // struct aio_ring.head
    const word = Buffer.alloc(4);
    let done = 0;
    while (done < count) {
      const n = inj.call(`${what}: io_submit`, SYS.io_submit, ring, Math.min(count - done, perCall), cbs);
      if (n <= 0n) throw new RestoreError(`${what}: io_submit took no request`);
      done += Number(n);
      // Reaped as io_getevents would: the kernel reads the head back from the ring.
      word.writeUInt32LE(Math.min(done, head));
      if (writeProcMem(pid, headAt, word) !== 4) throw new RestoreError(`${what}: cannot set its head`);
    }
  } finally {
    inj.call(`${what}: close of /dev/null`, SYS.close, ctx.freeFd);
  }
}
