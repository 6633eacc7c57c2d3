#!/usr/bin/python3
"""Drive a CRIU binary or service over RPC with Debian's pycriu, as a pycriu user would.

Run with the system Python (/usr/bin/python3, where the `criu` package puts pycriu):

    pycriu_client.py TARGET check
    pycriu_client.py TARGET version
    pycriu_client.py TARGET dump --dir DIR --pid PID [--leave-running]
                     [--log-file F] [--log-level N] [--shell-job]
    pycriu_client.py TARGET restore --dir DIR [--log-file F] [--log-level N]

TARGET is `--binary BINARY`, which pycriu execs as `BINARY swrk FD` (criu.use_binary), or
`--service SOCK`, the socket of a running `BINARY service --address SOCK` (criu.use_sk). The
action prints one JSON line on stdout: {"action": ..., "ok": true, ...} or
{"action": ..., "ok": false, "error": ..., "errno": ...}; the exit status is 0 when it succeeded,
1 otherwise.
"""

import argparse
import json
import os
import sys

# pycriu/__init__.py star-imports its criu module, so pycriu.criu is the class: take the names
# from the module itself.
from pycriu import rpc
from pycriu.criu import CRIUException, criu


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def failure(action, exc):
    emit(action=action, ok=False, error=str(exc), errno=getattr(exc, "errno", None),
         kind=type(exc).__name__)
    return False


def set_common_opts(c, args, dir_fd):
    c.opts.images_dir_fd = dir_fd
    if args.log_file:
        c.opts.log_file = args.log_file
    if args.log_level is not None:
        c.opts.log_level = args.log_level
    if args.shell_job:
        c.opts.shell_job = True


def do_dump(c, args, dir_fd):
    c.opts.Clear()
    set_common_opts(c, args, dir_fd)
    c.opts.pid = args.pid
    c.opts.leave_running = args.leave_running
    try:
        resp = c.dump()
    except CRIUException as e:
        return failure("dump", e)
    emit(action="dump", ok=True, restored=resp.restored)
    return True


def do_restore(c, args, dir_fd):
    c.opts.Clear()
    set_common_opts(c, args, dir_fd)
    try:
        resp = c.restore()
    except CRIUException as e:
        return failure("restore", e)
    emit(action="restore", ok=True, pid=resp.pid)
    return True


def do_check(c):
    try:
        c.check()
    except CRIUException as e:
        return failure("check", e)
    emit(action="check", ok=True)
    return True


def do_version(c):
    # pycriu has no version() of its own: send VERSION through its request path, as check() does.
    req = rpc.criu_req()
    req.type = rpc.VERSION
    try:
        resp = c._send_req_and_recv_resp(req)
    except CRIUException as e:
        return failure("version", e)
    if not resp.success or resp.type != rpc.VERSION:
        emit(action="version", ok=False, error="VERSION failed", errno=resp.cr_errno,
             type=resp.type)
        return False
    v = resp.version
    emit(action="version", ok=True, major=v.major_number, minor=v.minor_number,
         sublevel=v.sublevel if v.HasField("sublevel") else None,
         gitid=v.gitid if v.HasField("gitid") else None,
         name=v.name if v.HasField("name") else None)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--binary")
    target.add_argument("--service")
    p.add_argument("action", choices=["check", "version", "dump", "restore"])
    p.add_argument("--dir")
    p.add_argument("--pid", type=int)
    p.add_argument("--leave-running", action="store_true")
    p.add_argument("--log-file")
    p.add_argument("--log-level", type=int)
    p.add_argument("--shell-job", action="store_true")
    args = p.parse_args()
    if args.action in ("dump", "restore") and not args.dir:
        p.error("--dir is needed")
    if args.action in ("dump",) and not args.pid:
        p.error("--pid is needed")

    c = criu()
    if args.binary:
        c.use_binary(args.binary)
    else:
        c.use_sk(args.service)

    if args.action == "check":
        return do_check(c)
    if args.action == "version":
        return do_version(c)

    dir_fd = os.open(args.dir, os.O_DIRECTORY)
    try:
        if args.action == "dump":
            return do_dump(c, args, dir_fd)
        return do_restore(c, args, dir_fd)
    finally:
        os.close(dir_fd)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
