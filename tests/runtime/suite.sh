#!/usr/bin/env bash
# The runtime's unit tests again under valgrind: no invalid access, no definite leak (the
# thread pool's create/destroy loop included). SKIPs when valgrind or the tests are absent.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
if [ "${TL_FUZZ_SKIP:-0}" = 1 ]; then
  # make test-asan: the binaries carry AddressSanitizer, which valgrind cannot run
  echo "SKIP: valgrind_runtime: sanitizer build (make test runs valgrind)"
  exit 0
fi
for t in pool args data ckpt misc; do
  bin="$BUILD/tests/test_runtime_$t"
  name="valgrind_runtime_$t"
  if ! command -v valgrind >/dev/null 2>&1; then echo "SKIP: $name: valgrind not installed"; continue; fi
  if [ ! -x "$bin" ]; then echo "SKIP: $name: $bin not built"; continue; fi
  log=$(mktemp)
  if valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
       "$bin" >"$log" 2>&1 && ! grep -q '^FAIL' "$log"; then
    echo "PASS: $name"
  else
    grep -v '^PASS' "$log" | head -30 | sed 's/^/  /'
    echo "FAIL: $name"
  fi
  rm -f "$log"
done
