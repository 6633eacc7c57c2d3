#!/usr/bin/env bash
# Makes a fresh Debian machine ready for criu-ts: gcc, Debian's criu (for crit and pycriu), Go and
# go-criu's sources (the RPC client tests), pnpm at the version package.json pins, the workspace's
# packages, a build, and the C test workloads. What is already there is not installed again.
set -uo pipefail
cd "$(dirname "$0")/../.."

PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v crit >/dev/null || missing+=(criu)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v perl >/dev/null || missing+=(perl)
command -v nft >/dev/null || missing+=(nftables)
# iptables and ip6tables (Debian 12: the nf_tables backend) for --network-lock iptables
{ command -v iptables-restore && command -v ip6tables-restore; } >/dev/null || missing+=(iptables)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v ip >/dev/null || missing+=(iproute2) # `ip monitor` in the netlink tests
command -v sqlite3 >/dev/null || missing+=(sqlite3) # the outside connection of the SQLite test
# CRIU's own RPC clients in apps/service/test/clients: pycriu (the criu package's module, for the
# system Python, with python3-protobuf) and go-criu v5 with a Go toolchain to build the test's client
# offline from Debian's sources (/usr/share/gocode/src).
/usr/bin/python3 -c 'from pycriu.criu import criu' 2>/dev/null || missing+=(criu python3-protobuf)
command -v go >/dev/null || missing+=(golang-go)
[ -f /usr/share/gocode/src/github.com/checkpoint-restore/go-criu/go.mod ] || missing+=(golang-github-checkpoint-restore-go-criu-dev)
# Optional, tests skip without them: PostgreSQL 15 (restore-postgres), a JDK (restore-programs).
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || { echo "apt-get install ${missing[*]} failed"; exit 1; }
fi
echo "gcc: $(gcc -dumpversion), crit: $(command -v crit), $(go version)"

step "pnpm $PNPM_VERSION"
if [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || { echo "npm install -g pnpm@$PNPM_VERSION failed"; exit 1; }
fi

step "install"
pnpm install --frozen-lockfile || exit 1

step "build"
pnpm run build || exit 1
if [ -f tools/workloads/build.ts ]; then pnpm exec tsx tools/workloads/build.ts || exit 1; fi

