#!/usr/bin/env bash
# `make demo`: trains the flagship GPT (examples/gpt/gpt.tl) on the text of the fortunes
# package for a short run — the step compiled through LLVM, a progress bar, validation,
# checkpoints, metrics and a loss plot in out/demo — then prints a 200-character sample
# drawn from the trained model with its KV-cache decoder.
#   TL_DEMO_STEPS=N       number of steps (default below)
#   TL_DEMO_SIZE="..."    extra flags (default: only a higher peak learning rate, so that
#                         gpt.tl's default GPT, D=256 L=4 H=4 T=128 B=16, reaches a
#                         validation loss below 2 nats/byte in 550 steps: about four
#                         minutes on 2 cores)
set -u
cd "$(dirname "$0")/.."
TLC=${TLC:-build/tlc}
OUT=${TL_DEMO_OUT:-out/demo}
STEPS=${TL_DEMO_STEPS:-550}
SIZE=${TL_DEMO_SIZE---lr 3e-3}
if [ ! -d /usr/share/games/fortunes ]; then
  echo "tl demo: /usr/share/games/fortunes is missing; run 'make deps' (installs the fortunes package)" >&2
  exit 1
fi
rm -rf "$OUT"
echo "tl demo: training the GPT of examples/gpt/gpt.tl on /usr/share/games/fortunes ($STEPS steps; $SIZE)"
t0=$(date +%s)
# shellcheck disable=SC2086
"$TLC" run examples/gpt/gpt.tl -- $SIZE --steps "$STEPS" --eval-every 110 --checkpoint-every 110 \
    --out "$OUT" || exit 1
t1=$(date +%s)
echo
echo "tl demo: a 200-character sample from the trained model (prompt \"Q: \"):"
echo "----"
# shellcheck disable=SC2086
"$TLC" run examples/gpt/gpt.tl --sample -- $SIZE --ckpt "$OUT" --prompt "Q: " --tokens 200 \
    --temperature 0.8 --top-k 40 --seed 7 || exit 1
echo
echo "----"
python3 - "$OUT/metrics.jsonl" "$((t1 - t0))" <<'PY' 2>/dev/null || true
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r for r in rows if "val_loss" in r]
if val:
    print(f"tl demo: validation loss {val[-1]['val_loss']:.3f} nats/byte after {val[-1]['step']} steps "
          f"({sys.argv[2]} s with compilation); checkpoints, metrics.jsonl and loss.svg in {sys.argv[1].rsplit('/', 1)[0]}")
PY
