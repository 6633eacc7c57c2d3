// Packets queued on a socket, read without taking them: with SO_PEEK_OFF set, each recv(MSG_PEEK)
// continues where the previous one stopped instead of returning the head again. (CRIU reads socket
// queues the same way.) Datagrams must be peeked whole: a short peek would move the offset into the
// middle of one, so the buffer is as big as the receive buffer and a truncated one is an error.
// Files in flight (SCM_RIGHTS) come with the peek as new fds of criu-ts's own: they go to the caller.
import {
  close,
  getsockoptInt,
  isSysError,
  MSG_CMSG_CLOEXEC,
  MSG_CTRUNC,
  MSG_DONTWAIT,
  MSG_PEEK,
  MSG_TRUNC,
  recvmsg,
  SCM_MAX_FD,
  SO_PEEK_OFF,
  SO_RCVBUF,
  SOL_SOCKET,
  setsockopt,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';

/** SCM_MAX_FD: the most files one message can carry. */
const MAX_FDS = SCM_MAX_FD;

export interface QueuedPacket {
  data: Buffer;
  /** Files it carries (SCM_RIGHTS), as fds of criu-ts now; the caller closes them. */
  fds: number[];
}

export function peekQueue(fd: number, what: string): QueuedPacket[] {
  const before = getsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF);
  setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    const buf = Buffer.alloc(Math.max(256 * 1024, getsockoptInt(fd, SOL_SOCKET, SO_RCVBUF)));
    const out: QueuedPacket[] = [];
    for (;;) {
      let r: ReturnType<typeof recvmsg>;
      try {
        r = recvmsg(fd, { iov: [buf], maxFds: MAX_FDS }, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      } catch (e) {
        if (isSysError(e, 'EAGAIN')) return out;
        throw e;
      }
      if (r.flags & MSG_CTRUNC) {
        for (const f of r.fds) close(f);
        throw new DumpError(`${what}: a queued message carries more than ${MAX_FDS} files`);
      }
      if (r.flags & MSG_TRUNC) {
        for (const f of r.fds) close(f);
        throw new DumpError(`${what}: a queued datagram is larger than ${buf.length} bytes`);
      }
      if (r.bytes === 0 && r.fds.length === 0) return out; // end of stream (the peer shut down)
      out.push({ data: Buffer.from(buf.subarray(0, r.bytes)), fds: r.fds });
    }
  } finally {
    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, before);
  }
}
