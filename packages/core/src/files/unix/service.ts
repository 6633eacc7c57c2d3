// The RPC client's own connection, when a client dumps itself (a criu_req DUMP without a pid): its end
// of the socket it sent the request on is connected to criu-ts's end, which is no task's of the tree.
// As CRIU does, that socket is dumped as a closed one marked USK_SERVICE (no peer), and restore gives
// the restored client, on the same fd, a socket whose only datagram is the answer to the dump it asked
// for: success, restored = true, then end of file (nobody is at the other end any more).
import type { UnixSkEntry } from '@criu-ts/images';
import { AF_UNIX, close, MSG_DONTWAIT, SOCK_CLOEXEC, send, socketpair, TCP_CLOSE } from '@criu-ts/sys';
import { applySocketOptions } from '../socket/options.js';
import { shutdownAsDumped } from '../socket/shutdown.js';
import { USK_SERVICE } from './uflags.js';

/**
 * criu_resp{type: DUMP, success: true, dump: {restored: true}} as protobuf (rpc.proto: field 1 varint
 * DUMP = 1, field 2 bool true, field 3 criu_dump_resp{field 1 bool true}), what CRIU's restore puts in
 * the socket: the restored client wakes up in its recv() and reads it.
 */
export const RESTORED_DUMP_REPLY: Readonly<Buffer> = Buffer.from([
  0x08, 0x01, 0x10, 0x01, 0x1a, 0x02, 0x08, 0x01,
]);

/** What sock_diag says of a socket that matters here. */
interface Diag {
  state: number;
  peer?: number;
}

/**
 * A socket connected to `service` (the inode of the RPC server's end of the connection, CRIU's
 * service_sk_ino) is seen as a closed one without a peer: nothing of the peer is dumped, its queue
 * included. Undefined for any other socket.
 */
export function asServiceClient<T extends Diag>(sk: T, service: number | undefined): T | undefined {
  if (service === undefined || service === 0 || sk.peer !== service) return undefined;
  return { ...sk, state: TCP_CLOSE, peer: 0 };
}

export const isServiceClient = (u: UnixSkEntry): boolean => (u.uflags & USK_SERVICE) !== 0;

/**
 * The restored client's socket: one end of a new pair of its type with the dumped options, the answer
 * queued, the other end closed.
 */
export function serviceClientSocket(u: UnixSkEntry): number {
  const [fd, other] = socketpair(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    applySocketOptions(fd, u.opts);
    send(other, Buffer.from(RESTORED_DUMP_REPLY), MSG_DONTWAIT);
    shutdownAsDumped(fd, u.shutdown);
  } catch (e) {
    close(fd);
    throw e;
  } finally {
    close(other);
  }
  return fd;
}
