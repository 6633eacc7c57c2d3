// Established TCP connections through TCP_REPAIR (--tcp-established). In repair mode a socket sends
// nothing and its queues and sequence numbers can be read and set: dump reads both queues (peeked,
// kept), the sequence numbers, the options negotiated at connect (MSS, window scale, SACK,
// timestamps), the timestamp clock and the window; it leaves the socket in repair mode, so that when
// the task is killed the connection vanishes without a FIN or an RST. Restore builds a socket in
// repair mode, sets the sequence numbers, "connects" it (no SYN in repair mode), sets the options,
// window and timestamp, refills the queues and leaves repair mode: the connection goes on.
import type { TcpStreamEntry } from '@criu-ts/images';
import {
  getsockopt,
  getsockoptInt,
  IPPROTO_TCP,
  ioctl,
  MSG_DONTWAIT,
  MSG_PEEK,
  recv,
  send,
  setsockopt,
  TCP_INFO,
  TCP_MAXSEG,
  TCP_QUEUE_SEQ,
  TCP_RECV_QUEUE,
  TCP_REPAIR,
  TCP_REPAIR_OPTIONS,
  TCP_REPAIR_QUEUE,
  TCP_REPAIR_WINDOW,
  TCP_SEND_QUEUE,
  TCP_TIMESTAMP,
} from '@criu-ts/sys';

const SIOCINQ = 0x541b;
const SIOCOUTQ = 0x5411;
const SIOCOUTQNSD = 0x894b;
const TCPI_OPT_TIMESTAMPS = 1;
const TCPI_OPT_SACK = 2;
const TCPI_OPT_WSCALE = 4;
const TCPOPT_MSS = 2;
const TCPOPT_WINDOW = 3;
const TCPOPT_SACK_PERM = 4;
const TCPOPT_TIMESTAMP = 8;

/** An unsigned 32-bit option value (sequence numbers, timestamps go past 2^31). */
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

export const repairOn = (fd: number) => setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, 1);
export const repairOff = (fd: number) => setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, 0);

function queueLength(fd: number, request: number): number {
  const b = Buffer.alloc(4);
  ioctl(fd, request, b);
  return b.readInt32LE(0);
}

/** The bytes of one repair queue (RECV or SEND), peeked: they stay in the socket. */
function peekRepairQueue(fd: number, queue: number, len: number): Buffer {
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
  if (len === 0) return Buffer.alloc(0);
  const buf = Buffer.alloc(len);
  let got = 0;
  // A peek returns from the head of the queue each time: one call with room for all of it.
  got = recv(fd, buf, MSG_PEEK | MSG_DONTWAIT);
  return buf.subarray(0, got);
}

/** Everything of an established connection; the socket is left in repair mode. */
export function dumpTcpStream(fd: number): { entry: TcpStreamEntry; inq: Buffer; outq: Buffer } {
  repairOn(fd);
  const info = getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8);
  const inqLen = queueLength(fd, SIOCINQ);
  const outqLen = queueLength(fd, SIOCOUTQ);
  const unsqLen = queueLength(fd, SIOCOUTQNSD);
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
  const inqSeq = getsockoptInt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ) >>> 0;
  const inq = peekRepairQueue(fd, TCP_RECV_QUEUE, inqLen);
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  const outqSeq = getsockoptInt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ) >>> 0;
  const outq = peekRepairQueue(fd, TCP_SEND_QUEUE, outqLen);
  const win = getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, 20);
  const entry: TcpStreamEntry = {
    inq_len: inq.length,
    inq_seq: inqSeq,
    outq_len: outq.length,
    outq_seq: outqSeq,
    opt_mask: info[5] ?? 0,
    snd_wscale: (info[6] ?? 0) & 0xf,
    rcv_wscale: ((info[6] ?? 0) >> 4) & 0xf,
    mss_clamp: getsockoptInt(fd, IPPROTO_TCP, TCP_MAXSEG),
    timestamp: getsockoptInt(fd, IPPROTO_TCP, TCP_TIMESTAMP) >>> 0,
    unsq_len: Math.min(unsqLen, outq.length),
    snd_wl1: win.readUInt32LE(0),
    snd_wnd: win.readUInt32LE(4),
    max_window: win.readUInt32LE(8),
    rcv_wnd: win.readUInt32LE(12),
    rcv_wup: win.readUInt32LE(16),
  };
  return { entry, inq, outq };
}

/** Before connect: where each queue's sequence numbers start. */
export function setSequences(fd: number, t: TcpStreamEntry): void {
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, u32(t.inq_seq - t.inq_len));
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, u32(t.outq_seq - t.outq_len));
}

/** After connect: the options, the timestamp clock, the queues and the window; then repair off. */
export function finishTcpStream(fd: number, t: TcpStreamEntry, inq: Buffer, outq: Buffer): void {
  const opts: Array<[number, number]> = [[TCPOPT_MSS, t.mss_clamp]];
  if (t.opt_mask & TCPI_OPT_WSCALE) opts.push([TCPOPT_WINDOW, t.snd_wscale | ((t.rcv_wscale ?? 0) << 16)]);
  if (t.opt_mask & TCPI_OPT_SACK) opts.push([TCPOPT_SACK_PERM, 0]);
  if (t.opt_mask & TCPI_OPT_TIMESTAMPS) opts.push([TCPOPT_TIMESTAMP, 0]);
  const b = Buffer.alloc(opts.length * 8);
  for (const [i, [code, val]] of opts.entries()) {
    b.writeUInt32LE(code, i * 8);
    b.writeUInt32LE(val >>> 0, i * 8 + 4);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, b);
  if (t.opt_mask & TCPI_OPT_TIMESTAMPS && t.timestamp !== undefined)
    setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, u32(t.timestamp));
  const sent = t.outq_len - (t.unsq_len ?? 0);
  writeRepairQueue(fd, TCP_RECV_QUEUE, inq);
  writeRepairQueue(fd, TCP_SEND_QUEUE, outq.subarray(0, sent));
  if (t.snd_wl1 !== undefined) {
    const w = Buffer.alloc(20);
    [t.snd_wl1, t.snd_wnd ?? 0, t.max_window ?? 0, t.rcv_wnd ?? 0, t.rcv_wup ?? 0].forEach((v, i) => {
      w.writeUInt32LE(v >>> 0, i * 4);
    });
    setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, w);
  }
  repairOff(fd);
  // What the task had written but TCP had not sent yet goes out as any new data would.
  if (sent < outq.length) writeAll(fd, outq.subarray(sent));
}

function writeRepairQueue(fd: number, queue: number, data: Buffer): void {
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
  writeAll(fd, data);
}

function writeAll(fd: number, data: Buffer): void {
  for (let done = 0; done < data.length; ) done += send(fd, data.subarray(done));
}
