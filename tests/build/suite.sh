#!/usr/bin/env bash
# tlc build: a train block becomes a standalone executable that needs no LLVM, trains
# exactly as `tlc run` (the same generated code), takes its run-time flags, refuses to
# change the sizes it was built with, and resumes from its checkpoints.
set -u
cd "$(dirname "$0")/../.."
TLC=${TLC:-${BUILD:-build}/tlc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prog=tests/train/tiny.tl

if "$TLC" build $prog -o "$tmp/tiny" >"$tmp/build.log" 2>&1 && [ -x "$tmp/tiny" ]; then
  echo "PASS: build/builds"
else
  echo "FAIL: build/builds"; cat "$tmp/build.log"; exit 0
fi

if ldd "$tmp/tiny" | grep -qi llvm; then echo "FAIL: build/no_llvm"; ldd "$tmp/tiny"
else echo "PASS: build/no_llvm ($(ldd "$tmp/tiny" | wc -l) shared libraries, none of them LLVM)"; fi

# the executable and the JIT run the same generated code: identical losses
"$tmp/tiny" --out "$tmp/exe" --steps 20 >"$tmp/exe.log" 2>&1
"$TLC" run $prog -- --out "$tmp/jit" --steps 20 >"$tmp/jit.log" 2>&1
strip_tps() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l); r.pop("tokens_per_s"); print(json.dumps(r, sort_keys=True))' "$1"; }
if [ -s "$tmp/exe/metrics.jsonl" ] && [ "$(strip_tps "$tmp/exe/metrics.jsonl")" = "$(strip_tps "$tmp/jit/metrics.jsonl")" ]; then
  echo "PASS: build/same_as_jit"
else
  echo "FAIL: build/same_as_jit"; cat "$tmp/exe.log" "$tmp/jit.log"
fi

# run-time flags work; build-time sizes are refused with a message naming the flag
"$tmp/tiny" --dim 32 >"$tmp/fixed.log" 2>&1; r=$?
if [ $r -eq 2 ] && grep -q -- "--dim is fixed when the program was built" "$tmp/fixed.log"; then echo "PASS: build/fixed_flags"
else echo "FAIL: build/fixed_flags ($r)"; cat "$tmp/fixed.log"; fi
if "$tmp/tiny" --help | grep -q -- "--steps" && "$tmp/tiny" --stepz 3 2>&1 | grep -q "did you mean --steps"; then
  echo "PASS: build/help_and_bad_flags"
else echo "FAIL: build/help_and_bad_flags"; fi

# resume from the executable's own checkpoint continues the trajectory bitwise
mkdir -p "$tmp/r/ckpt" && cp "$tmp/exe/ckpt/ckpt-10.safetensors" "$tmp/r/ckpt/"
"$tmp/tiny" --out "$tmp/r" --resume "$tmp/r" --steps 20 >"$tmp/r.log" 2>&1
a=$(strip_tps "$tmp/exe/metrics.jsonl" | python3 -c 'import sys,json; print([l for l in sys.stdin if json.loads(l)["step"] > 10])')
b=$(strip_tps "$tmp/r/metrics.jsonl" | python3 -c 'import sys,json; print([l for l in sys.stdin if json.loads(l)["step"] > 10])')
if [ "$a" = "$b" ] && grep -q "resumed from" "$tmp/r.log"; then echo "PASS: build/resume_bitwise"
else echo "FAIL: build/resume_bitwise"; echo "$a"; echo "$b"; cat "$tmp/r.log"; fi

# a failed build leaves no file behind and says why
"$TLC" build tests/lang/graph_err_no_train.tl -o "$tmp/nothing" >"$tmp/bad.log" 2>&1; r=$?
if [ $r -ne 0 ] && [ ! -e "$tmp/nothing" ] && grep -q "no train block" "$tmp/bad.log"; then echo "PASS: build/bad_input"
else echo "FAIL: build/bad_input ($r)"; cat "$tmp/bad.log"; fi

# SIGKILL at random moments (checkpoints every step, so many kills land inside a write):
# after every kill the newest checkpoint is complete, and the run resumed again and again
# ends with exactly the losses of an uninterrupted run.
"$tmp/tiny" --out "$tmp/ref" --steps 1500 --checkpoint-every 1 >/dev/null 2>&1
kills=0; broken=0; attempts=0
while [ $attempts -lt 60 ]; do
  attempts=$((attempts + 1))
  "$tmp/tiny" --out "$tmp/k" --resume "$tmp/k" --steps 1500 --checkpoint-every 1 >>"$tmp/k.log" 2>&1 &
  pid=$!
  # a few kills early and fast, then longer runs so the program also gets to finish
  if [ $attempts -le 8 ]; then sleep "0.$((RANDOM % 25 + 5))"; else sleep "$((attempts / 4)).$((RANDOM % 10))"; fi
  if kill -9 $pid 2>/dev/null; then
    kills=$((kills + 1))
    wait $pid 2>/dev/null
    python3 tests/build/killcheck.py "$tmp/k/ckpt" >/dev/null || { broken=1; python3 tests/build/killcheck.py "$tmp/k/ckpt"; }
  else
    wait $pid; rc=$?
    [ $rc -eq 0 ] && break
  fi
done
same=$(python3 - "$tmp/ref/metrics.jsonl" "$tmp/k/metrics.jsonl" <<'PY'
import json, sys
def last(path):
    out = {}
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        r.pop("tokens_per_s", None)
        out[r["step"]] = r  # a resumed run repeats the steps after its checkpoint
    return out
a, b = last(sys.argv[1]), last(sys.argv[2])
print("yes" if a and a == b else f"no: {len(a)} vs {len(b)} steps; first difference {next((k for k in sorted(a) if a.get(k) != b.get(k)), None)}")
PY
)
if [ $broken -eq 0 ] && [ "$same" = yes ] && [ $kills -ge 3 ]; then
  echo "PASS: build/sigkill_resume ($kills kills, resumed to the end, identical losses)"
else
  echo "FAIL: build/sigkill_resume (kills $kills, broken $broken, same: $same)"; tail -5 "$tmp/k.log"
fi
