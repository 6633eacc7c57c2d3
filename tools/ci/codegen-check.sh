#!/usr/bin/env bash
# packages/images/src/gen and packages/rpc/src/gen are generated from proto/ by tools/codegen and committed (readable on the
# forge, in diffs and in code review; lint and typecheck need no build first). This regenerates it and
# fails if the result differs from what is committed: a .proto or codegen change without its output.
set -uo pipefail
cd "$(dirname "$0")/../.."
gen="packages/images/src/gen packages/rpc/src/gen"
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "codegen check: not a git checkout, skipped"
  exit 0
fi
pnpm --silent run codegen >/dev/null || exit 1
if ! git diff --quiet -- $gen || [ -n "$(git ls-files --others --exclude-standard -- $gen)" ]; then
  echo "codegen check: $gen differ from what proto/ and tools/codegen give; run 'pnpm codegen' and commit:"
  git status --short -- $gen
  git diff --stat -- $gen
  exit 1
fi
echo "codegen check: $gen is up to date"
