#!/usr/bin/env bash
# Sets up a fresh Debian machine for criu-ts and runs every test.
# Installs what is missing (pnpm pinned, gcc, Debian's criu for crit), builds all
# packages and the C workloads, runs each package's tests, and ends with one line:
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n== %s\n' "$*"; }

bash tools/ci/setup.sh || exit 1

step "lint, typecheck (sources, tests, tools) and generated code"
lint_ok=1
bash tools/ci/codegen-check.sh || lint_ok=0
pnpm run lint || lint_ok=0
pnpm run typecheck || lint_ok=0

step "test"
rm -rf .reports && mkdir -p .reports
pnpm exec turbo run test --concurrency=1 --continue
turbo_rc=$?

step "summary"
pnpm exec tsx tools/ci/summary.ts .reports
summary_rc=$?
if [ $lint_ok -eq 0 ]; then echo "lint, typecheck or codegen check failed"; exit 1; fi
if [ $summary_rc -ne 0 ] || [ $turbo_rc -ne 0 ]; then exit 1; fi
