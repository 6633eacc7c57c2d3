// One criu_req per datagram in, one criu_resp per datagram out, on a SOCK_SEQPACKET fd, blocking: what
// CRIU's swrk and service workers exchange with their clients.
import { type CriuReq, CriuReqType, type CriuResp, decodeRequest, encodeResponse } from '@criu-ts/rpc';
import {
  getsockopt,
  MSG_NOSIGNAL,
  MSG_PEEK,
  MSG_TRUNC,
  POLLHUP,
  POLLRDHUP,
  pollNow,
  recv,
  SO_PEERCRED,
  SOL_SOCKET,
  send,
} from '@criu-ts/sys';

/**
 * The largest request read: a criu_req is a few hundred bytes (a few KiB with many externals), so a
 * datagram of more is no request. It is read and dropped (the next one stays readable) and answered.
 */
export const MAX_REQUEST = 1 << 20;

export type Received =
  | { kind: 'request'; req: CriuReq; bytes: number }
  | { kind: 'bad'; why: string }
  | { kind: 'eof' };

const peekBuf = Buffer.alloc(0);

/**
 * The next request of `fd`: its size learnt first (recv MSG_PEEK|MSG_TRUNC gives a datagram's real
 * length), then read whole. End of stream (or a peer gone: ECONNRESET) is `eof`, as CRIU takes a
 * zero-length read; a datagram that is too large or that does not decode is `bad`, with why.
 */
export function receiveRequest(fd: number): Received {
  let size: number;
  try {
    size = recv(fd, peekBuf, MSG_PEEK | MSG_TRUNC);
  } catch (e) {
    if ((e as { code?: string }).code === 'ECONNRESET') return { kind: 'eof' };
    throw e;
  }
  if (size === 0) {
    // An empty datagram and the end of the stream both read 0 bytes: the end shows as POLLHUP/POLLRDHUP.
    if (peerGone(fd)) return { kind: 'eof' };
    recv(fd, Buffer.alloc(1), 0);
    return { kind: 'bad', why: 'an empty datagram is no criu_req (type is required)' };
  }
  if (size > MAX_REQUEST) {
    recv(fd, Buffer.alloc(1), MSG_TRUNC); // drops the datagram
    return {
      kind: 'bad',
      why: `a datagram of ${size} bytes is no criu_req (criu-ts reads at most ${MAX_REQUEST})`,
    };
  }
  const buf = Buffer.alloc(size);
  const got = recv(fd, buf, MSG_TRUNC);
  if (got !== size)
    return { kind: 'bad', why: `the datagram changed size while read (${size}, then ${got} bytes)` };
  try {
    return { kind: 'request', req: decodeRequest(buf), bytes: size };
  } catch (e) {
    // The codec drops an enum value it does not know, so an unknown type reads as a missing one.
    const type = unknownType(buf);
    if (type !== undefined) return { kind: 'bad', why: `Invalid req: unknown request type ${type}` };
    return {
      kind: 'bad',
      why: `malformed request (${size} bytes): ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

/** The value of field 1 (type, a varint) when it is no criu_req_type; undefined otherwise. */
function unknownType(buf: Buffer): number | undefined {
  for (let at = 0; at < buf.length; ) {
    const key = readVarint(buf, at);
    if (!key) return undefined;
    at = key.next;
    const field = key.value >>> 3;
    const wire = key.value & 7;
    if (wire === 0) {
      const v = readVarint(buf, at);
      if (!v) return undefined;
      if (field === 1) return Object.values(CriuReqType).includes(v.value as never) ? undefined : v.value;
      at = v.next;
    } else if (wire === 2) {
      const len = readVarint(buf, at);
      if (!len) return undefined;
      at = len.next + len.value;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else return undefined;
  }
  return undefined;
}

function readVarint(buf: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = at; i < buf.length && shift < 35; shift += 7, i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/** Sends one response; false when the peer is gone (EPIPE, ECONNRESET), which is no error of ours. */
export function sendResponse(fd: number, resp: CriuResp): boolean {
  try {
    send(fd, encodeResponse(resp), MSG_NOSIGNAL);
    return true;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN') return false;
    throw e;
  }
}

/** Whether the peer has closed its end (without reading anything). */
export function peerGone(fd: number): boolean {
  return (pollNow(fd, POLLRDHUP) & (POLLHUP | POLLRDHUP)) !== 0;
}

/** SO_PEERCRED: the pid, uid and gid of the process that connected (or made the socketpair). */
export function peerCred(fd: number): { pid: number; uid: number; gid: number } {
  const b = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, 12);
  return { pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) };
}
