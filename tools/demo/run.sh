#!/usr/bin/env bash
# The README's demo: set everything up, explore the bundled image directory
# (examples/sample-dump) with crit-ts next to CRIU's crit, then checkpoint a live counter,
# kill it, restore it and show it carried on.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/ci/setup.sh >/dev/null || { echo "setup failed: run bash tools/ci/setup.sh to see why"; exit 1; }

crit_ts=node_modules/.bin/crit-ts
dir=examples/sample-dump
show() { printf '\n$ %s\n' "$*"; "$@"; }

show ls "$dir"
show "$crit_ts" x "$dir" ps
show "$crit_ts" x "$dir" fds
show "$crit_ts" x "$dir" rss
show "$crit_ts" show "$dir/$(cd "$dir" && ls core-*.img | head -1)"
pid=$(cd "$dir" && ls core-*.img | head -1 | tr -dc 0-9)
show "$crit_ts" decode --pretty -i "$dir/pagemap-$pid.img"

# crit 3.17 crashes in `x rss` when a run lies in the last VMA, and does not know the creds
# fields CRIU added since (creds cap_amb and no_new_privs, pagemap nr_pages, which renamed the
# old nr_pages to compat_nr_pages): those are left out of the comparison.
printf '\nSame output as CRIU crit:'
for what in ps fds mems; do
  if diff <("$crit_ts" x "$dir" "$what") <(crit x "$dir" "$what") >/dev/null; then printf ' x %s: same.' "$what"; else printf ' x %s: DIFFERENT.' "$what"; fi
done
for img in "$dir"/*.img; do
  case "$img" in */pages-* | */core-* | */pagemap-*) continue ;; esac
  diff <("$crit_ts" decode -i "$img") <(crit decode -i "$img") >/dev/null || { printf '\n%s decodes differently!\n' "$img"; exit 1; }
done
printf ' decode of the other images: same.\n'

# The real thing: a counter process is checkpointed, killed, and restored; it carries on.
printf '\n== checkpoint and restore a live process\n'
work=$(mktemp -d /tmp/criu-ts-demo-XXXXXX)
trap 'kill -9 $(cat "$work/pid" 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
pnpm exec tsx tools/workloads/build.ts >/dev/null
# setsid: its own session, so no --shell-job is needed; fds above 2 closed (pipes are not dumped yet).
python3 -c 'import os,sys; os.closerange(3, 65536); os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
  tools/workloads/bin/counter "$work/count.txt" 100 </dev/null >/dev/null 2>&1 &
pid=$!
disown "$pid"
while [ "$(grep -c . "$work/count.txt" 2>/dev/null || echo 0)" -lt 5 ]; do :; done
show node_modules/.bin/criu-ts dump -t "$pid" -D "$work/images"
echo "counter $pid was dumped and killed; its last line: $(tail -1 "$work/count.txt")"
while [ -e "/proc/$pid" ]; do :; done
show node_modules/.bin/criu-ts restore -D "$work/images" -d --pidfile "$work/pid"
before=$(tail -1 "$work/count.txt")
while [ "$(tail -1 "$work/count.txt")" -lt $((before + 5)) ]; do :; done
echo "restored as pid $(cat "$work/pid"); it went on counting: $(tail -3 "$work/count.txt" | tr '\n' ' ')"
