#!/usr/bin/env bash
# The README's demo: set everything up, then explore the bundled image directory
# (examples/sample-dump: images of a `sleep` process) with crit-ts, side by side with
# CRIU's own crit where the output must be identical.
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
