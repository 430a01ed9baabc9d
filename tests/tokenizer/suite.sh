#!/usr/bin/env bash
# Tokenizer declarations from the command line: a character vocabulary built from data
# (chars(train = ...)) encodes and decodes its corpus exactly, and a character it never saw
# is an error naming it, not a crash.
set -u
cd "$(dirname "$0")/../.."
TLC=${TLC:-${BUILD:-build}/tlc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'the cat sat on the mat\nà la carte ü\n' > "$tmp/corpus.txt"
printf 'tokenizer c = chars(train = "corpus.txt")\n' > "$tmp/t.tl"
if "$TLC" tokenizer encode --tokenizer "$tmp/t.tl:c" "$tmp/corpus.txt" > "$tmp/ids" 2>"$tmp/err" &&
   "$TLC" tokenizer decode --tokenizer "$tmp/t.tl:c" "$tmp/ids" > "$tmp/back" 2>>"$tmp/err" &&
   cmp -s "$tmp/corpus.txt" "$tmp/back"; then
  n=$(wc -w < "$tmp/ids"); v=$(tr ' ' '\n' < "$tmp/ids" | sort -un | wc -l)
  echo "PASS: tokenizer/chars_from_data ($n ids, $v distinct)"
else
  echo "FAIL: tokenizer/chars_from_data"; cat "$tmp/err"
fi
printf 'xyz' > "$tmp/other.txt"
"$TLC" tokenizer encode --tokenizer "$tmp/t.tl:c" "$tmp/other.txt" > /dev/null 2>"$tmp/err2"; r=$?
if [ $r -ne 0 ] && [ $r -lt 128 ] && [ "$(wc -l < "$tmp/err2")" -le 3 ] && [ -s "$tmp/err2" ]; then
  echo "PASS: tokenizer/unknown_char_error ($(head -c 100 "$tmp/err2"))"
else
  echo "FAIL: tokenizer/unknown_char_error ($r)"; cat "$tmp/err2"
fi
