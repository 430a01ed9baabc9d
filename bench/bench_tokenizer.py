#!/usr/bin/env python3
"""GPT-2 encode throughput: tl's BPE vs tiktoken (and Hugging Face tokenizers if installed).

    bench/.venv/bin/python bench/bench_tokenizer.py [--runs 7] [--mb 6]

Same text for every tokenizer: the fortunes corpus, Tiny Shakespeare and the GPT-2 merges
file (non-ASCII heavy), repeated up to --mb megabytes, valid UTF-8. Single thread; each
figure is the median of --runs timed encodes of the whole text (tl: a fresh tokenizer per
run, so its word cache starts empty every time; tiktoken and HF keep no state across
calls). Loading is not timed. The ids of all tokenizers are checked to be identical.
Needs ../shared/data/gpt2; builds bench/tok_bench.c into build/bench/.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2 = os.path.join(ROOT, "..", "shared", "data", "gpt2")
PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def corpus(mb):
    parts = []
    for p in sorted(glob.glob("/usr/share/games/fortunes/*")) + [
            os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt"),
            os.path.join(GPT2, "vocab.bpe")]:
        if os.path.isfile(p) and not os.path.islink(p) and not p.endswith(".dat"):
            try:
                parts.append(open(p, "rb").read().decode("utf-8"))
            except UnicodeDecodeError:
                pass
    text = "".join(parts)
    while len(text.encode()) < mb * 1e6:
        text += text
    b = text.encode()[: int(mb * 1e6)].decode("utf-8", errors="ignore")
    return b


def build():
    out = os.path.join(ROOT, "build", "bench", "tok_bench")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = [os.path.join(ROOT, "bench", "tok_bench.c")] + \
        sorted(glob.glob(os.path.join(ROOT, "runtime", "tok*.c"))) + \
        [os.path.join(ROOT, "runtime", "fsutil.c")]
    subprocess.check_call(["gcc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I" + ROOT + "/runtime",
                           "-o", out] + src + ["-lpcre2-8", "-lutf8proc", "-lcjson", "-lm",
                                                "-lpthread"])
    return out


def median_mbs(fn, nbytes, runs):
    r = []
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        r.append(nbytes / 1e6 / (time.perf_counter() - t0))
    return statistics.median(r), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--mb", type=float, default=6)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(GPT2, "encoder.json")):
        print("SKIP: ../shared/data/gpt2 is absent")
        return
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    text = corpus(a.mb)
    nbytes = len(text.encode())
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode())
        path = f.name
    try:
        exe = build()
        res = subprocess.run([exe, GPT2, path, str(a.runs)], check=True, capture_output=True,
                             text=True).stdout.split()
        tl_mbs, tl_n = float(res[2]), int(res[4])
    finally:
        os.unlink(path)
    rows = [("tl (C, built-in GPT-2 scanner + word cache)", tl_mbs, tl_n)]

    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(GPT2, "vocab.bpe"),
                                            os.path.join(GPT2, "encoder.json"))
    enc = tiktoken.Encoding("gpt2", pat_str=PAT, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    tk_mbs, ids = median_mbs(lambda: enc.encode(text, allowed_special="all"), nbytes, a.runs)
    rows.append((f"tiktoken {tiktoken.__version__}", tk_mbs, len(ids)))
    try:
        import tokenizers
        from tokenizers import ByteLevelBPETokenizer
        hf = ByteLevelBPETokenizer(os.path.join(GPT2, "encoder.json"),
                                   os.path.join(GPT2, "vocab.bpe"))
        hf_mbs, enc_hf = median_mbs(lambda: hf.encode(text), nbytes, a.runs)
        rows.append((f"HF tokenizers {tokenizers.__version__}", hf_mbs, len(enc_hf.ids)))
    except ImportError:
        print("(Hugging Face tokenizers not installed: skipped)")

    print(f"GPT-2 encode, {nbytes / 1e6:.2f} MB, single thread, median of {a.runs} runs")
    for name, mbs, n in rows:
        print(f"  {name:46s} {mbs:8.2f} MB/s  {n} ids")
    print(f"  tl / tiktoken = {tl_mbs / tk_mbs:.2f}x")
    if tl_n != rows[1][2]:
        print(f"  WARNING: tl gives {tl_n} ids, tiktoken {rows[1][2]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
