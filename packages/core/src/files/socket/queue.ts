// Packets queued on a socket, read without taking them: with SO_PEEK_OFF set, each recv(MSG_PEEK)
// continues where the previous one stopped instead of returning the head again. (CRIU reads socket
// queues the same way.) Datagrams must be peeked whole: a short peek would move the offset into the
// middle of one, so the buffer is as big as the receive buffer and a truncated one is an error.
import {
  close,
  getsockoptInt,
  isSysError,
  MSG_CMSG_CLOEXEC,
  MSG_DONTWAIT,
  MSG_PEEK,
  MSG_TRUNC,
  recvmsg,
  SO_PEEK_OFF,
  SO_RCVBUF,
  SOL_SOCKET,
  setsockopt,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';

export function peekQueue(fd: number, what: string): Buffer[] {
  const before = getsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF);
  setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    const buf = Buffer.alloc(Math.max(256 * 1024, getsockoptInt(fd, SOL_SOCKET, SO_RCVBUF)));
    const out: Buffer[] = [];
    for (;;) {
      let r: ReturnType<typeof recvmsg>;
      try {
        r = recvmsg(fd, { iov: [buf], maxFds: 64 }, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      } catch (e) {
        if (isSysError(e, 'EAGAIN')) return out;
        throw e;
      }
      if (r.fds.length > 0) {
        for (const f of r.fds) close(f);
        throw new DumpError(
          `${what}: a queued message carries file descriptors (SCM_RIGHTS): not supported yet`,
        );
      }
      if (r.flags & MSG_TRUNC)
        throw new DumpError(`${what}: a queued datagram is larger than ${buf.length} bytes`);
      if (r.bytes === 0) return out; // end of stream (the peer shut down)
      out.push(Buffer.from(buf.subarray(0, r.bytes)));
    }
  } finally {
    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, before);
  }
}
