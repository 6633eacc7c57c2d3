// Established TCP connections through TCP_REPAIR (--tcp-established). In repair mode a socket sends
// nothing and its queues and sequence numbers can be read and set: dump reads both queues (peeked,
// kept), the sequence numbers, the options negotiated at connect (MSS, window scale, SACK,
// timestamps), the timestamp clock and the window; it puts the socket back in repair mode once the
// task is killed, so that the connection vanishes without a FIN or an RST. Restore builds a socket in
// repair mode, sets the sequence numbers, "connects" it (no SYN in repair mode), sets the options,
// window and timestamp, refills the queues and leaves repair mode: the connection goes on.
//
// Half-closed and closing connections too (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING). A FIN counts
// one in the sequence numbers the kernel reports but carries no data: the images keep the kernel's
// sequence numbers and queue lengths without the FIN (as CRIU's do), and restore rebuilds the socket as
// established, then replays the FINs in their order: ours by shutdown(SHUT_WR) in repair mode (counted
// as sent when the peer had acknowledged it), the peer's by a segment from the peer (peer-segment.ts).
import type { TcpStreamEntry } from '@criu-ts/images';
import {
  connect,
  getsockopt,
  getsockoptInt,
  IPPROTO_TCP,
  ioctl,
  isSysError,
  MSG_DONTWAIT,
  MSG_PEEK,
  recv,
  SHUT_WR,
  SIOCINQ,
  SIOCOUTQ,
  SIOCOUTQNSD,
  SO_REUSEADDR,
  SOL_SOCKET,
  send,
  setsockopt,
  shutdown,
  TCP_INFO,
  TCP_MAXSEG,
  TCP_NO_QUEUE,
  TCP_QUEUE_SEQ,
  TCP_RECV_QUEUE,
  TCP_REPAIR,
  TCP_REPAIR_OFF,
  TCP_REPAIR_OFF_NO_WP,
  TCP_REPAIR_ON,
  TCP_REPAIR_OPTIONS,
  TCP_REPAIR_QUEUE,
  TCP_REPAIR_WINDOW,
  TCP_SEND_QUEUE,
  TCP_TIMESTAMP,
  TCPI_OPT_SACK,
  TCPI_OPT_TIMESTAMPS,
  TCPI_OPT_WSCALE,
  TCPOPT_MSS,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_WINDOW,
} from '@criu-ts/sys';
import type { InetAddress } from './address.js';
import { sendPeerSegment, TH_ACK, TH_FIN } from './peer-segment.js';

/** TCP states (tcpi_state). */
export const TCP = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
} as const;
const bit = (state: number) => 1 << state;
/** Our FIN went (or waits to go) before the peer's came. */
const OUR_FIN_FIRST = bit(TCP.FIN_WAIT1) | bit(TCP.FIN_WAIT2) | bit(TCP.CLOSING);
/** Our FIN went after the peer's (a closed connection: the last FIN was ours, as CRIU replays it). */
const OUR_FIN_SECOND = bit(TCP.LAST_ACK) | bit(TCP.CLOSE);
/** The peer has acknowledged our FIN. */
const OUR_FIN_ACKED = bit(TCP.FIN_WAIT2) | bit(TCP.CLOSE);
/** The peer's FIN has come. */
const PEER_FIN = bit(TCP.CLOSE_WAIT) | bit(TCP.LAST_ACK) | bit(TCP.CLOSING) | bit(TCP.CLOSE);

/** The states of a connection that is set up, or being set up, and not over. */
export const isConnectionState = (state: number) =>
  state === TCP.ESTABLISHED ||
  state === TCP.SYN_SENT ||
  (((OUR_FIN_FIRST | OUR_FIN_SECOND | PEER_FIN) & bit(state)) !== 0 && state !== TCP.CLOSE);

/**
 * The states TCP repair brings back: a connection's, and a closed one (reset, or closed both ways)
 * that still holds bytes to read: it comes back through both FINs (CRIU's way of closing it again).
 */
export const isRepairableState = (state: number) => isConnectionState(state) || state === TCP.CLOSE;
const ourFin = (state: number) => ((OUR_FIN_FIRST | OUR_FIN_SECOND) & bit(state)) !== 0;
const peerFin = (state: number) => (PEER_FIN & bit(state)) !== 0;

/** An unsigned 32-bit option value (sequence numbers, timestamps go past 2^31). */
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

export const repairOn = (fd: number) => setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON);
export const repairOff = (fd: number) => setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF);

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

/**
 * Leave repair mode without the window probe TCP_REPAIR_OFF sends, and give SO_REUSEADDR back: the
 * kernel forces address reuse in repair mode and clears it when repair mode ends.
 */
function repairOffQuietly(fd: number, reuseAddr: number): void {
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
  if (reuseAddr) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, reuseAddr);
}

/**
 * Everything of a connection, read in repair mode. The socket leaves repair mode at once: the network
 * lock holds its packets meanwhile, and a criu-ts killed before the dump ends leaves no socket of a
 * running tree in repair mode (where it would send nothing ever again). The dump puts it back in repair
 * mode once the tree is killed.
 */
export function dumpTcpStream(fd: number): { entry: TcpStreamEntry; inq: Buffer; outq: Buffer } {
  const reuseAddr = getsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR);
  repairOn(fd);
  try {
    return readTcpStream(fd);
  } finally {
    repairOffQuietly(fd, reuseAddr);
  }
}

function readTcpStream(fd: number): { entry: TcpStreamEntry; inq: Buffer; outq: Buffer } {
  const info = getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8);
  const state = info[0] ?? TCP.CLOSE;
  const inqLen = queueLength(fd, SIOCINQ); // never counts a FIN
  // Our FIN is in the send queue, counted by SIOCOUTQ until acknowledged and by SIOCOUTQNSD until sent.
  // A closed connection's send queue is never read again (a reset one may keep data): left out, as
  // CRIU leaves it.
  const fin = ourFin(state) ? 1 : 0;
  const closed = state === TCP.CLOSE;
  const outqLen = closed ? 0 : Math.max(0, queueLength(fd, SIOCOUTQ) - fin);
  const unsqLen = closed ? 0 : Math.max(0, queueLength(fd, SIOCOUTQNSD) - fin);
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

/** TCP_MAXSEG takes at most this (the kernel's MAX_TCP_WINDOW). */
const MAX_USER_MSS = 32767;

/**
 * Before connect: where each queue's sequence numbers start, and the segment size. A connect() in
 * repair mode sizes its segments from the MSS clamp the socket has then (536 bytes unless told), and
 * the MSS option set afterwards does not resize them: so the dumped clamp is given first, as a user
 * MSS, and taken back once the real options are in.
 */
export function setSequences(fd: number, t: TcpStreamEntry, state: number): void {
  const synSent = state === TCP.SYN_SENT;
  if (t.mss_clamp > 0 && !synSent)
    setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, Math.min(t.mss_clamp, MAX_USER_MSS));
  const seq = dataSequences(t, state);
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, u32(seq.inq - t.inq_len));
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  // A connection being set up counts its SYN in the dumped sequence: the SYN sent again takes it.
  setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, u32(seq.outq - t.outq_len - (synSent ? 1 : 0)));
}

/**
 * A connection that was being set up (SYN_SENT) connects again, out of repair mode: its SYN goes out
 * with the dumped initial sequence number once the network lock lets it through, as the kernel would
 * have retransmitted it. The socket must not block (connect answers EINPROGRESS).
 */
export function connectAgain(fd: number, peer: Buffer): void {
  repairOff(fd);
  try {
    connect(fd, peer);
  } catch (e) {
    if (!isSysError(e, 'EINPROGRESS')) throw e;
  }
}

/** Where each queue's data ends: the dumped sequence numbers without the FINs they count. */
function dataSequences(t: TcpStreamEntry, state: number): { inq: number; outq: number } {
  return {
    inq: (t.inq_seq - (peerFin(state) ? 1 : 0)) >>> 0,
    outq: (t.outq_seq - (ourFin(state) ? 1 : 0)) >>> 0,
  };
}

/** The connection's state and its two ends, for the FINs replayed at restore. */
export interface TcpConnection {
  state: number;
  local: InetAddress;
  remote: InetAddress;
}

/**
 * After connect: the options, the timestamp clock, the queues and the window, the FINs of a closing
 * connection; then `beforeRepairOff` (the dumped buffer sizes: the window the socket advertises once
 * out of repair mode follows from them) and repair off.
 */
export function finishTcpStream(
  fd: number,
  t: TcpStreamEntry,
  inq: Buffer,
  outq: Buffer,
  c: TcpConnection,
  beforeRepairOff: () => void = () => {},
): void {
  const opts: Array<[number, number]> = [[TCPOPT_MSS, t.mss_clamp]];
  if (t.opt_mask & TCPI_OPT_WSCALE) opts.push([TCPOPT_WINDOW, t.snd_wscale | ((t.rcv_wscale ?? 0) << 16)]);
  if (t.opt_mask & TCPI_OPT_SACK) opts.push([TCPOPT_SACK_PERM, 0]);
  if (t.opt_mask & TCPI_OPT_TIMESTAMPS) opts.push([TCPOPT_TIMESTAMP, 0]);
  const b = Buffer.alloc(opts.length * 8);
  for (const [i, [code, val]] of opts.entries()) {
    b.writeUInt32LE(code, i * 8);
    b.writeUInt32LE(val >>> 0, i * 8 + 4);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, 0); // the user MSS of setSequences goes
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, b);
  if (t.opt_mask & TCPI_OPT_TIMESTAMPS && t.timestamp !== undefined)
    setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, u32(t.timestamp));
  const sent = t.outq_len - (t.unsq_len ?? 0);
  writeRepairQueue(fd, TCP_RECV_QUEUE, inq);
  writeRepairQueue(fd, TCP_SEND_QUEUE, outq.subarray(0, sent));
  if (sent < outq.length) {
    // What the task had written but TCP had not sent yet goes out as any new data would, before a FIN.
    repairOff(fd);
    writeAll(fd, outq.subarray(sent), 'send');
    repairOn(fd);
  }
  // After the queues: leaving repair mode above sent a window probe, which advertised a window sized by
  // the restore's large buffers; the dumped window replaces it before the peer can act on it.
  if (t.snd_wl1 !== undefined) setWindow(fd, t, c.state);
  replayFins(fd, t, c);
  beforeRepairOff();
  repairOff(fd);
}

/** The window as dumped; its left edge counted the peer's FIN, which is not received yet. */
function setWindow(fd: number, t: TcpStreamEntry, state: number): void {
  const fin = peerFin(state) ? 1 : 0;
  const w = Buffer.alloc(20);
  const words = [
    t.snd_wl1 ?? 0,
    t.snd_wnd ?? 0,
    t.max_window ?? 0,
    (t.rcv_wnd ?? 0) + fin,
    (t.rcv_wup ?? 0) - fin,
  ];
  for (const [i, v] of words.entries()) w.writeUInt32LE(v >>> 0, i * 4);
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, w);
}

/**
 * The FINs of a closing connection, in the order they happened: ours by shutdown in repair mode (as a
 * sent segment if the peer had acknowledged it), the peer's, and its acknowledgement of ours, as
 * segments from the peer, each waited for until the socket is in the state it leads to.
 */
function replayFins(fd: number, t: TcpStreamEntry, c: TcpConnection): void {
  const m = bit(c.state);
  if (!(m & (OUR_FIN_FIRST | OUR_FIN_SECOND | PEER_FIN))) return;
  const seq = dataSequences(t, c.state);
  const segment = (flags: number, ack: number, from = seq.inq) =>
    sendPeerSegment({
      from: c.remote,
      to: c.local,
      seq: from,
      ack,
      flags,
      window: (t.snd_wnd ?? 0) >>> (t.opt_mask & TCPI_OPT_WSCALE ? t.snd_wscale : 0),
    });
  const ackSegment = (ack: number) => segment(TH_ACK, ack, t.inq_seq >>> 0);
  if (m & OUR_FIN_FIRST) shutdownInRepair(fd, (m & OUR_FIN_ACKED) !== 0);
  if (m & PEER_FIN) {
    segment(TH_FIN | TH_ACK, seq.outq - t.outq_len);
    waitForState(fd, m & OUR_FIN_FIRST ? TCP.CLOSING : TCP.CLOSE_WAIT);
  }
  if (m & OUR_FIN_SECOND) shutdownInRepair(fd, (m & OUR_FIN_ACKED) !== 0);
  // The peer's acknowledgement of our FIN comes after its own FIN, if it sent one.
  if (m & OUR_FIN_ACKED) ackSegment(seq.outq + 1);
  waitForState(fd, c.state);
}

/** Our FIN, queued by shutdown; with `sent`, through the send queue, so counted as already sent. */
function shutdownInRepair(fd: number, sent: boolean): void {
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, sent ? TCP_SEND_QUEUE : TCP_NO_QUEUE);
  shutdown(fd, SHUT_WR);
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
}

const STATE_WAIT_MS = 2000;

/** A segment written to loopback is taken in by the kernel soon, not always before sendmsg returns. */
function waitForState(fd: number, want: number): void {
  const until = process.uptime() * 1000 + STATE_WAIT_MS;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const now = getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8)[0];
    if (now === want) return;
    if (process.uptime() * 1000 > until)
      throw new Error(`the connection did not come back to TCP state ${want} (it is in state ${now})`);
    Atomics.wait(nap, 0, 0, 1);
  }
}

function writeRepairQueue(fd: number, queue: number, data: Buffer): void {
  if (data.length === 0) return; // nothing to put: the queue need not be chosen (most connections)
  setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
  writeAll(fd, data, queue === TCP_RECV_QUEUE ? 'receive' : 'send');
}

/** Below this, a chunk the kernel cannot allocate is not made smaller again. */
const MIN_CHUNK = 1024;

/**
 * Put `data` in a queue without ever waiting: nothing drains a queue while the connection is in repair
 * mode or locked, so a send that waited for room would wait forever. The buffers were made as large as
 * the kernel allows (roomForQueues); a chunk the kernel cannot allocate in one piece is halved.
 */
function writeAll(fd: number, data: Buffer, queue: string): void {
  let chunk = data.length;
  for (let done = 0; done < data.length; ) {
    try {
      done += send(fd, data.subarray(done, done + chunk), MSG_DONTWAIT);
    } catch (e) {
      if (isSysError(e, 'ENOMEM', 'ENOBUFS') && chunk > MIN_CHUNK) {
        chunk >>>= 1;
        continue;
      }
      if (isSysError(e, 'EAGAIN'))
        throw new Error(
          `the ${queue} queue takes ${done} of its ${data.length} bytes and no more (net.ipv4.tcp_mem?)`,
        );
      throw e;
    }
  }
}
