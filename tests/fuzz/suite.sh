#!/usr/bin/env bash
# Fuzzes the front end (lex + parse + sema) with libFuzzer for ~60 s, ~600 s when
# TL_TEST_LONG=1. New inputs go to $BUILD/fuzz/corpus (kept between runs); the seeds in
# tests/fuzz/corpus/ are the golden .tl programs. A crash leaves tests/fuzz/crash-*:
# fix the bug and add the input as a golden test in tests/lang/.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=60
if [ "${TL_FUZZ_SKIP:-0}" = 1 ]; then echo "SKIP: fuzz/frontend: TL_FUZZ_SKIP=1 (make test-asan runs the suite, make test runs the fuzzer)"; exit 0; fi
[ "${TL_TEST_LONG:-0}" = 1 ] && secs=600
if ! command -v clang-19 >/dev/null 2>&1; then
  echo "SKIP: fuzz/frontend: clang-19 is not installed (make deps)"
  exit 0
fi
if ! make --no-print-directory -s BUILD="$BUILD" fuzz >"$BUILD.fuzz-build.log" 2>&1; then
  sed 's/^/    /' "$BUILD.fuzz-build.log" | tail -30
  echo "FAIL: fuzz/frontend (build failed)"
  rm -f "$BUILD.fuzz-build.log"
  exit 1
fi
rm -f "$BUILD.fuzz-build.log"
mkdir -p "$BUILD/fuzz/corpus"
log=$(mktemp); trap 'rm -f "$log"' EXIT
"$BUILD/fuzz/fuzz_frontend" -max_total_time=$secs -timeout=5 -rss_limit_mb=2048 \
  -max_len=8192 -print_final_stats=1 -artifact_prefix=tests/fuzz/ \
  "$BUILD/fuzz/corpus" tests/fuzz/corpus >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
if [ $rc -eq 0 ]; then
  echo "PASS: fuzz/frontend (${execs:-?} executions in ${secs} s, no crash)"
else
  grep -E 'ERROR|SUMMARY|==[0-9]+==|Test unit written|#[0-9]+' "$log" | tail -30 | sed 's/^/    /'
  echo "FAIL: fuzz/frontend (exit $rc after ${execs:-?} executions; see tests/fuzz/crash-*)"
  exit 1
fi
