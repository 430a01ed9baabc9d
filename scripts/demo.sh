#!/usr/bin/env bash
# `make demo`: until the GPT example trains (issue 4/8), this checks every example program
# with the real front end and says what it did.
set -u
cd "$(dirname "$0")/.."
TLC=${TLC:-build/tlc}
files=(examples/*/*.tl docs/examples/*.tl)
echo "tl demo: checking ${#files[@]} example programs with $TLC check"
ok=0; bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if out=$("$TLC" check "$f" 2>&1); then
    printf '  ok    %s\n' "$f"; ok=$((ok + 1))
  else
    printf '  FAIL  %s\n%s\n' "$f" "$out"; bad=$((bad + 1))
  fi
done
echo "tl demo: $ok programs parsed and type-checked, $bad failed"
echo "(training the GPT in examples/gpt/ arrives with the CPU backend, issues 3/8 and 4/8)"
[ "$bad" -eq 0 ]
