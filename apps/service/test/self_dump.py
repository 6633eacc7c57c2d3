#!/usr/bin/python3
"""A pycriu user that dumps itself: a DUMP without a pid, through Debian's pycriu.

    self_dump.py (--binary BINARY | --service SOCK | --swrk-child BINARY) --dir DIR --report FILE
                 [--leave-running]

It writes its report to FILE, one line per write (stdio is not used: the test runs it with /dev/null):
`READY PID`, then, once the dump answers, `DUMP success=S restored=R pid=PID`, and `restored` when the
answer says restored (which it does only in a process restored from the images), or `FAIL why`.
With --binary, pycriu starts `BINARY swrk FD` detached for a self-dump (daemon); with --service it
connects to the service's socket; with --swrk-child it starts `BINARY swrk FD` as its own child (not
detached, so criu itself is in the tree it is asked to dump) and hands pycriu the socket (use_fd).
"""

import argparse
import os
import socket
import sys

from pycriu.criu import CRIUException, criu


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--binary")
    target.add_argument("--service")
    target.add_argument("--swrk-child")
    p.add_argument("--dir", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--leave-running", action="store_true")
    args = p.parse_args()

    report = os.open(args.report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def say(line):
        os.write(report, (line + "\n").encode())

    c = criu()
    if args.binary:
        c.use_binary(args.binary)
    elif args.service:
        c.use_sk(args.service)
    else:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.set_inheritable(theirs.fileno(), True)
        if os.fork() == 0:
            os.execv(args.swrk_child, [args.swrk_child, "swrk", str(theirs.fileno())])
        theirs.close()
        c.use_fd(mine.fileno())
    c.opts.images_dir_fd = os.open(args.dir, os.O_DIRECTORY)
    c.opts.log_file = "dump.log"
    c.opts.log_level = 4
    c.opts.leave_running = args.leave_running
    # No pid: the caller (this process) is dumped.
    say("READY %d" % os.getpid())
    try:
        resp = c.dump()
    except CRIUException as e:
        say("FAIL %s" % e)
        return 1
    say("DUMP success=True restored=%s pid=%d" % (resp.restored, os.getpid()))
    if resp.restored:
        say("restored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
