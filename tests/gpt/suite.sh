#!/usr/bin/env bash
# The flagship GPT (examples/gpt/gpt.tl) at a small size through the JIT: it trains, its
# flags are the documented ones, and its checkpoint opens in PyTorch with readable names
# and the right shapes (examples/gpt/load_checkpoint.py; SKIP without torch/safetensors).
set -u
cd "$(dirname "$0")/../.."
TLC=${TLC:-${BUILD:-build}/tlc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
small="--dim 32 --layers 2 --heads 4 --seq 16 --batch 4"

help=$("$TLC" run examples/gpt/gpt.tl -- --help 2>&1)
missing=""
for f in data steps batch seq lr seed out resume checkpoint-every eval-every threads; do
  echo "$help" | grep -q -- "--$f " || missing="$missing --$f"
done
if [ -z "$missing" ]; then echo "PASS: gpt/flags"; else echo "FAIL: gpt/flags (missing:$missing)"; echo "$help"; fi

if [ ! -d /usr/share/games/fortunes ]; then
  echo "SKIP: gpt/trains: /usr/share/games/fortunes is absent (make deps installs the fortunes package)"
  exit 0
fi
if "$TLC" run examples/gpt/gpt.tl -- $small --steps 6 --eval-every 3 --out "$tmp/g" >"$tmp/g.log" 2>&1 \
   && [ -s "$tmp/g/loss.svg" ] && grep -q '"val_loss"' "$tmp/g/metrics.jsonl"; then
  echo "PASS: gpt/trains"
else
  echo "FAIL: gpt/trains"; cat "$tmp/g.log"
fi

py=""
for c in "${TL_PYTHON:-}" bench/.venv/bin/python python3; do
  [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch, safetensors' 2>/dev/null && { py=$c; break; }
done
if [ -z "$py" ]; then
  echo "SKIP: gpt/checkpoint_in_pytorch: no Python with torch and safetensors (bench/.venv, see bench/README.md)"
elif "$py" examples/gpt/load_checkpoint.py "$tmp/g" --expect-gpt >"$tmp/py.log" 2>&1 && grep -q "^OK" "$tmp/py.log"; then
  echo "PASS: gpt/checkpoint_in_pytorch ($(grep -c '^  ' "$tmp/py.log") tensors)"
else
  echo "FAIL: gpt/checkpoint_in_pytorch"; cat "$tmp/py.log"
fi

# --tokenizer bpe: the GPT trains on ids from a byte-level BPE that tl trains on the
# corpus (2048 ids): fewer tokens than bytes, and the first loss is near ln(2048)
if "$TLC" run examples/gpt/gpt.tl -- --tokenizer bpe $small --steps 4 --eval-every 2 --out "$tmp/b" >"$tmp/b.log" 2>&1 &&
   python3 - "$tmp/b/metrics.jsonl" "$tmp/b.log" <<'PY'
import json, math, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
log = open(sys.argv[2]).read()
m = re.search(r"(\d+) params, (\d+) tokens", log)
assert m and int(m.group(2)) < 2_000_000, log          # the 2.58 MB corpus as ~1M BPE ids
assert abs(rows[0]["loss"] - math.log(2048)) < 0.5, rows[0]
PY
then echo "PASS: gpt/bpe_tokenizer"
else echo "FAIL: gpt/bpe_tokenizer"; cat "$tmp/b.log"; fi
