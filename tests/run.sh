#!/usr/bin/env bash
# Runs every test of tl and ends with exactly one line: "N passed, N failed".
#  - build/tests/test_*: unit and differential test programs (from tests/unit/test_*.c)
#  - tests/*/suite.sh:   suites driven by scripts (golden .tl programs, fuzzing, ptxas ...)
# Every program prints "PASS: name" / "FAIL: name" / "SKIP: name: why" lines; a program
# that exits non-zero without printing a FAIL line (a crash) counts as one failure.
# TL_TEST_LONG=1 (make test-long) asks suites for their long soak and fuzz runs.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
pass=0; fail=0; skip=0
failed_names=()
log=$(mktemp); trap 'rm -f "$log"' EXIT

run_one() {   # name, command...
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local p f s
  p=$(grep -c '^PASS: ' "$log"); f=$(grep -c '^FAIL: ' "$log"); s=$(grep -c '^SKIP: ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "FAIL: $name exited with status $rc" >>"$log"
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  printf '%-40s %4d passed %3d failed %3d skipped  (%ds)\n' "$name" "$p" "$f" "$s" $((SECONDS - t0))
  if [ "$f" -gt 0 ]; then
    grep -v '^PASS: ' "$log" | sed 's/^/    /' | head -60
    failed_names+=("$name")
  fi
  grep '^SKIP: ' "$log" | sed 's/^/    /'
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" timeout 600 "$t"
done
for s in tests/*/suite.sh; do
  [ -f "$s" ] || continue
  run_one "$(dirname "$s" | sed 's|tests/||')" timeout 900 bash "$s"
done

[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
[ "$skip" -gt 0 ] && echo "$skip skipped (reasons above)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
