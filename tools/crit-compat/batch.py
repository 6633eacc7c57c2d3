#!/usr/bin/python3
"""Run many crit operations in one Python process, exactly as crit's cli.py does them.

crit takes a noticeable time to start (Python, protobuf, 70 generated modules), so tests that
compare hundreds of images with crit hand this script the whole job list at once:

    /usr/bin/python3 tools/crit-compat/batch.py < jobs.json > results.json

jobs.json is a JSON list of operations; they run in order, so a later job may read what an
earlier one wrote:

  {"op": "decode", "in": IMG, "out": JSON, "pretty": false}
        crit decode -i IMG -o JSON [--pretty]   (json.dump, indent 4 if pretty, no newline)
  {"op": "decode", "in": IMG, "out": JSON, "pretty": true, "stdout": true}
        crit decode -i IMG [--pretty] > JSON    (the same, plus the newline crit adds on stdout)
  {"op": "show", "in": IMG, "out": JSON, "nopl": false}
        crit show IMG [--nopl] > JSON           (pretty, indent 4, newline)
  {"op": "encode", "in": JSON, "out": IMG}
        crit encode -i JSON -o IMG
  {"op": "info", "in": IMG, "out": JSON}
        crit info IMG > JSON
  {"op": "x", "dir": DIR, "what": "ps" | "fds" | "mems" | "rss", "out": TXT}
        crit x DIR WHAT > TXT
  {"op": "handlers", "out": JSON}
        not a crit command: the sorted list of magics crit has an image handler for

Every job calls the very function of pycriu.cli that the crit command runs, with the options
dictionary argparse would have built, and with sys.stdout / sys.stderr redirected to the output
file / a buffer. The result, on stdout, is one JSON list with an object per job, in order:

  {"ok": true}                                       the command succeeded
  {"ok": false, "exit": N, "error": "...", "stderr": "..."}
        it failed: "exit" is the exit code crit would have had (sys.exit(N) in cli.py, 1 for an
        uncaught exception), "error" the exception ("Type: message"), "stderr" what it printed.

An "id" in a job is copied to its result. A job that is not understood is reported the same way.
"""
import contextlib
import io
import json
import os
import sys
import traceback

PYCRIU = '/usr/lib/python3/dist-packages'
if PYCRIU not in sys.path:
    sys.path.append(PYCRIU)

from pycriu import cli, images  # noqa: E402  (after the path set-up, as /usr/bin/crit does)


def reset_explorer_caches():
    """cli.py caches files.img and file names in module globals; crit starts fresh each run."""
    cli.files_img = None
    cli.files_cache = {}
    for ft in cli.file_types.values():
        ft['img'] = None


def to_stdout_file(path, fn, opts):
    """Runs fn(opts) with sys.stdout being `path` (as `crit ... > path`)."""
    with open(path, 'w') as f, contextlib.redirect_stdout(f):
        fn(opts)


def type_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == 'builtins' else '%s.%s' % (t.__module__, t.__name__)


def handlers():
    """The image magics crit can decode and encode: a handler in images.py and a magic in magic.py."""
    return sorted(m for m in images.handlers if m in images.magic.by_name)


def run(job):
    op = job.get('op')
    if op == 'decode':
        opts = {'in': job['in'], 'out': job['out'], 'pretty': bool(job.get('pretty')), 'nopl': False}
        if job.get('stdout'):
            opts['out'] = None
            to_stdout_file(job['out'], cli.decode, opts)
        else:
            cli.decode(opts)
    elif op == 'show':
        # argparse: set_defaults(func=decode, pretty=True, out=None)
        opts = {'in': job['in'], 'nopl': bool(job.get('nopl')), 'pretty': True, 'out': None}
        to_stdout_file(job['out'], cli.decode, opts)
    elif op == 'encode':
        cli.encode({'in': job['in'], 'out': job['out']})
    elif op == 'info':
        to_stdout_file(job['out'], cli.info, {'in': job['in']})
    elif op == 'handlers':
        with open(job['out'], 'w') as f:
            json.dump(handlers(), f)
    elif op == 'x':
        if job.get('what') not in cli.explorers:
            raise ValueError('unknown explorer %r' % job.get('what'))
        reset_explorer_caches()
        to_stdout_file(job['out'], cli.explore, {'dir': job['dir'], 'what': job['what']})
    else:
        raise ValueError('unknown op %r' % op)


def main():
    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        err = io.StringIO()
        result = {}
        if isinstance(job, dict) and 'id' in job:
            result['id'] = job['id']
        try:
            with contextlib.redirect_stderr(err):
                run(job)
            result['ok'] = True
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            result.update(ok=code == 0, exit=code, error='SystemExit: %s' % (e.code,))
        except Exception as e:  # noqa: BLE001  (any failure of crit is a result, not a crash)
            result.update(ok=False, exit=1, error='%s: %s' % (type_name(e), e), trace=traceback.format_exc())
        if err.getvalue():
            result['stderr'] = err.getvalue()
        results.append(result)
    json.dump(results, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
