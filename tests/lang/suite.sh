#!/usr/bin/env bash
# Golden tests of tlc. Each tests/lang/NAME.tl starts with a line
#     # RUN: ARGS
# giving tlc's arguments (the file name is appended), e.g. `# RUN: check` or
# `# RUN: --emit=ast --parse-only`; a word like `emit=ast` is short for `--emit=ast`.
# NAME.expected holds tlc's stdout and stderr together, then a line `exit: N`.
# Prints PASS: lang/NAME or FAIL: lang/NAME with a unified diff.
#   TL_UPDATE_GOLDEN=1 bash tests/lang/suite.sh     rewrites the .expected files
#   bash tests/lang/suite.sh syntax_                runs only tests whose name starts so
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TLC=${TLC:-$BUILD/tlc}
export TL_STDLIB=${TL_STDLIB:-$PWD/stdlib}
if [ ! -x "$TLC" ]; then
  echo "FAIL: lang: $TLC is not built (make $TLC)"
  exit 1
fi
filter=${1:-}
out=$(mktemp); trap 'rm -f "$out"' EXIT
status=0
for t in tests/lang/*.tl; do
  name=$(basename "$t" .tl)
  case "$name" in "$filter"*) ;; *) continue ;; esac
  run=$(head -n 1 "$t" | sed -n 's/^# *RUN: *//p')
  if [ -z "$run" ]; then
    echo "FAIL: lang/$name (its first line must be '# RUN: ARGS')"
    status=1
    continue
  fi
  args=()
  for w in $run; do
    case "$w" in -*|check|build|run|kernels|tune|tokenizer) args+=("$w") ;;
                 *=*) args+=("--$w") ;; *) args+=("$w") ;; esac
  done
  timeout 20 "$TLC" "${args[@]}" "$t" >"$out" 2>&1
  echo "exit: $?" >>"$out"
  expected=${t%.tl}.expected
  if [ "${TL_UPDATE_GOLDEN:-0}" = 1 ]; then
    cp "$out" "$expected"
    echo "PASS: lang/$name (updated)"
  elif [ ! -f "$expected" ]; then
    echo "FAIL: lang/$name (no $expected; TL_UPDATE_GOLDEN=1 writes it)"
    status=1
  elif diff -u --label "$expected" --label "actual" "$expected" "$out" >"$out.diff"; then
    echo "PASS: lang/$name"
  else
    echo "FAIL: lang/$name"
    sed 's/^/    /' "$out.diff" | head -40
    status=1
  fi
  rm -f "$out.diff"
done
exit $status
