// The datagram channel on a real socketpair: one receive is one datagram, a datagram longer than the
// limit is reported (not silently cut), the event loop runs while a receive waits, close() wakes a
// waiting receive and gives the fd back, the peer's end reads as null.
import fs from 'node:fs';
import { AF_UNIX, close, recv, SOCK_CLOEXEC, SOCK_SEQPACKET, send, socketpair } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { DatagramTruncatedError, SeqpacketChannel } from '../src/index.js';

const open: number[] = [];
function pair(): [number, number] {
  const p = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  open.push(...p);
  return p;
}
const fdOpen = (fd: number) => fs.existsSync(`/proc/self/fd/${fd}`);

afterEach(() => {
  for (const fd of open.splice(0)) {
    try {
      close(fd);
    } catch {
      // the channel closed it
    }
  }
});

describe('SeqpacketChannel', () => {
  it('receives one datagram per receive(), whole, in order; sends one datagram per send()', async () => {
    const [a, b] = pair();
    const ch = new SeqpacketChannel(a);
    send(b, Buffer.from('first'));
    send(b, Buffer.alloc(70_000, 7));
    send(b, Buffer.from('third'));
    expect((await ch.receive())?.toString()).toBe('first');
    const big = await ch.receive();
    expect(big?.length).toBe(70_000);
    expect(big?.every((x) => x === 7)).toBe(true);
    expect((await ch.receive())?.toString()).toBe('third');

    await ch.send(Buffer.from('to b'));
    await ch.send(Buffer.from('again'));
    const got = Buffer.alloc(64);
    expect(got.subarray(0, recv(b, got)).toString()).toBe('to b');
    expect(got.subarray(0, recv(b, got)).toString()).toBe('again');
    await ch.close();
  });

  it('reports a datagram longer than maxDatagram instead of returning its head; the next one reads fine', async () => {
    const [a, b] = pair();
    const ch = new SeqpacketChannel(a, { maxDatagram: 16 });
    send(b, Buffer.alloc(16, 1)); // exactly the limit: fine
    send(b, Buffer.alloc(17, 2));
    send(b, Buffer.from('after'));
    expect((await ch.receive())?.length).toBe(16);
    const err = await ch.receive().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatagramTruncatedError);
    expect(String(err)).toMatch(/longer than 16 bytes/);
    expect((await ch.receive())?.toString()).toBe('after');
    await ch.close();
  });

  it('leaves the event loop running while a receive waits (the read is in the thread pool)', async () => {
    const [a, b] = pair();
    const ch = new SeqpacketChannel(a);
    const pending = ch.receive();
    // Timers fire and other pool work completes while the read blocks a pool thread.
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (++ticks === 5) {
          clearInterval(t);
          resolve();
        }
      }, 1);
    });
    await fs.promises.readFile('/proc/self/stat');
    send(b, Buffer.from('late'));
    expect((await pending)?.toString()).toBe('late');
    await ch.close();
  });

  it('reads null once the peer closed its end, after what it sent', async () => {
    const [a, b] = pair();
    const ch = new SeqpacketChannel(a);
    send(b, Buffer.from('last words'));
    close(b);
    open.splice(open.indexOf(b), 1);
    expect((await ch.receive())?.toString()).toBe('last words');
    expect(await ch.receive()).toBeNull();
    await ch.close();
  });

  it('close() wakes a waiting receive (null) and closes the fd once the read let go of it', async () => {
    const [a] = pair();
    const ch = new SeqpacketChannel(a);
    const pending = ch.receive();
    await ch.close();
    expect(await pending).toBeNull();
    expect(fdOpen(a)).toBe(false);
    open.splice(open.indexOf(a), 1);
    expect(await ch.receive()).toBeNull();
    await expect(ch.send(Buffer.from('x'))).rejects.toThrow(/closed channel/);
    await ch.close(); // idempotent
  });

  it('shutdownRead() ends a waiting receive even while the peer end is still held', async () => {
    const [a, b] = pair();
    const ch = new SeqpacketChannel(a);
    const pending = ch.receive();
    send(b, Buffer.from('queued'));
    expect((await pending)?.toString()).toBe('queued');
    const next = ch.receive();
    ch.shutdownRead();
    expect(await next).toBeNull();
    expect(fdOpen(b)).toBe(true);
    await ch.close();
  });
});
