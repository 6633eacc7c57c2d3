// Half-closed and closing TCP connections (--tcp-established), each with its peer outside the tree (this
// test process): dumped in the state they were in, killed and restored, then carried on to the end.
// The peer sees every byte once and an orderly end, never a reset. The states come from
// /proc/net/tcp, so a connection that is not in the state a test means to dump fails the test. The
// iptables lock runs the CLOSE_WAIT case in restore-tcp-iptables.test.ts (one file uses iptables).
//   CLOSE_WAIT  a server in the tree whose client has sent its request and FIN
//   FIN_WAIT2   a client in the tree that sent its question and FIN, acknowledged
//   FIN_WAIT1   a client whose FIN waits behind megabytes the server does not read yet
//   LAST_ACK    a server that got the FIN, answered with megabytes not read yet, and shut down
//   CLOSE       a client whose connection ended both ways before it read the answer
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, runCli, tempDir, waitFor, waitForLine } from './helpers.js';
import {
  CLIENT_PY,
  closeWait,
  connectingPeer,
  isPattern,
  listeningPeer,
  received,
  SERVER_PY,
  STATE,
  startPython as start,
  tcpState,
} from './tcp-closing.js';
import { dumpKillRestore as dumpKillRestoreLocked, haveNft, viaNftables } from './tcp-helpers.js';

afterEach(() => cleanup());

const dumpKillRestore = (pid: number) => dumpKillRestoreLocked(pid, viaNftables);

describe.skipIf(!haveNft)('criu-ts restore: half-closed and closing TCP connections', () => {
  it('CLOSE_WAIT: a server whose client sent its request and FIN reads both after restore and answers', () =>
    closeWait(viaNftables));

  it('CLOSE_WAIT over IPv6 (::1): the FIN is replayed as an IPv6 segment', () =>
    closeWait(viaNftables, '::1'));

  it('CLOSE_WAIT of an IPv6 socket talking IPv4 (::ffff:127.0.0.1): the FIN is replayed as IPv4', () =>
    closeWait(viaNftables, '::ffff:127.0.0.1'));

  it('FIN_WAIT2: a client that sent its question and FIN gets the answer and the end after restore', async () => {
    const server = await listeningPeer();
    const w = start(CLIENT_PY, [String(server.port), 'question']);
    const local = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[2]);
    await waitFor(() => server.ended, 'the question and its FIN');
    await waitFor(() => tcpState(local, server.port) === STATE.FIN_WAIT2, 'FIN_WAIT2');
    await dumpKillRestore(w.pid);
    expect(tcpState(local, server.port)).toBe(STATE.FIN_WAIT2);
    server.socket!.end('answer');
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT answer EOF');
    expect(received(server).toString()).toBe('question');
    expect(server.troubles).toEqual([]);
  });

  it('FIN_WAIT1: a FIN waiting behind megabytes the server has not read: all of them, then the end', async () => {
    const server = await listeningPeer({ paused: true });
    const w = start(CLIENT_PY, [String(server.port), 'send-big']);
    const [, sent, local] = (await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ').map(Number);
    await waitFor(() => tcpState(local!, server.port) === STATE.FIN_WAIT1, 'FIN_WAIT1');
    await dumpKillRestore(w.pid);
    server.socket!.resume();
    await waitFor(() => server.ended, 'every byte and the FIN', 30_000);
    const got = received(server);
    expect(got.length).toBe(sent);
    expect(isPattern(got)).toBe(true);
    server.socket!.end('thanks');
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT thanks EOF');
    expect(server.troubles).toEqual([]);
  });

  it('LAST_ACK: a server that answered with megabytes and shut down: the client reads them all and the end', async () => {
    const w = start(SERVER_PY, ['answer-big']);
    const port = Number((await waitForLine(w.report, /^PORT /, { pid: w.pid })).split(' ')[1]);
    const client = await connectingPeer(port, { paused: true });
    client.socket!.end('request');
    const sent = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[1]);
    await waitFor(() => tcpState(port, client.port) === STATE.LAST_ACK, 'LAST_ACK');
    await dumpKillRestore(w.pid);
    client.socket!.resume();
    await waitFor(() => client.ended, 'every byte and the FIN', 30_000);
    const got = received(client);
    expect(got.length).toBe(sent);
    expect(isPattern(got)).toBe(true);
    expect(client.troubles).toEqual([]);
    process.kill(w.pid, 'SIGUSR1');
  });

  it('a connection closed both ways with bytes not read yet (CLOSE): the task reads them and the end after restore', async () => {
    const server = await listeningPeer();
    const w = start(CLIENT_PY, [String(server.port), 'question']);
    const local = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[2]);
    await waitFor(() => server.ended, 'the question and its FIN');
    server.socket!.end('answer');
    await waitFor(() => tcpState(local, server.port) === STATE.TIME_WAIT, 'both FINs through');
    const unread = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      path.join(tempDir('criu-ts-tcp-closed-'), 'images'),
    ]);
    expect(unread.code).toBe(1); // not without --tcp-established: the bytes would be lost
    expect(unread.stderr).toMatch(
      new RegExp(
        `pid ${w.pid} fd \\d+: a closed TCP connection with 6 bytes not read yet, consider using --tcp-established option`,
      ),
    );
    await dumpKillRestore(w.pid);
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT answer EOF');
  });
});
