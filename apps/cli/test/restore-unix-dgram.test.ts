// Unix sockets as CRIU's zdtm suite checks them: a stream socket never connected, with options
// (sock_opts00); a datagram socket whose pair end is closed, a message still queued (socket_close_data);
// one bound to a name relative to its working directory, a message queued by a client gone since
// (socket_close_data01); one bound and connected to itself (sockets_dgram).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from './helpers.js';
import { checkLines, dumpOk, restoreOk, startProgram } from './inet-program.js';

afterEach(() => cleanup());

describe('criu-ts restore: unix sockets as zdtm checks them', () => {
  it('a stream socket never connected keeps its options', async () => {
    const { report, pid } = await startProgram(`
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
def check():
    yield 'passcred %d' % u.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED)
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual(['passcred 1']);
  });

  it('a datagram socket whose pair end is closed still holds the message sent before', async () => {
    const { report, pid } = await startProgram(`
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
b.send(b'hello'); b.close()
def check():
    a.setblocking(False)
    yield 'got %r' % a.recv(100)
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual(["got b'hello'"]);
  });

  it('a datagram socket bound to a relative name: the message of a client gone since, and new clients reach it by that name', async () => {
    const cwd = tempDir('criu-ts-unix-rel-');
    const { report, pid } = await startProgram(`
os.chdir(${JSON.stringify(cwd)})
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); srv.bind('rel.sock')
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.connect('rel.sock'); c.send(b'first'); c.close()
def check():
    yield 'got %r' % srv.recv(100)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.connect('rel.sock'); c.send(b'second')
    yield 'got %r, name %r' % (srv.recv(100), srv.getsockname())
`);
    // criu-ts runs elsewhere: the name must be bound in the task's directory, not criu-ts's.
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(fs.existsSync(path.join(cwd, 'rel.sock'))).toBe(true);
    expect(await checkLines(pid, report)).toEqual(["got b'first'", "got b'second', name 'rel.sock'"]);
  });

  it('a datagram socket bound and connected to itself sends to itself again', async () => {
    const name = path.join(tempDir('criu-ts-unix-self-'), 'self.sock');
    const { report, pid } = await startProgram(`
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(${JSON.stringify(name)}); s.connect(${JSON.stringify(name)})
s.send(b'before'); s.recv(100)
def check():
    s.send(b'after'); s.setblocking(False)
    yield 'got %r' % s.recv(100)
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual(["got b'after'"]);
  });
});
