#!/usr/bin/env python3
"""Driver of bench/tokenizer/run.sh (see there). Each tool runs in its own process so
that thread counts (RAYON_NUM_THREADS for HF) are set before it starts."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench_tokenizer import GPT2, PAT, corpus  # noqa: E402


def chunks_at_lines(text, n):
    """n chunks cut after a newline between printable ASCII characters (tok_bench.c's rule:
    always a GPT-2 piece boundary, so the concatenated ids are the whole text's)."""
    out, lo, L = [], 0, len(text)
    for k in range(1, n):
        i = max(lo, L * k // n)
        while i + 1 < L and not (text[i] == "\n" and i > 0 and "!" <= text[i - 1] <= "~"
                                 and "!" <= text[i + 1] <= "~"):
            i += 1
        out.append(text[lo:i + 1])
        lo = i + 1
    out.append(text[lo:])
    return out


def child(kind, threads, path, runs, vocab):
    """Runs in a fresh process: prints JSON {value, n}."""
    text = open(path, encoding="utf-8").read()
    nbytes = len(text.encode())
    small = chunks_at_lines(text, max(1, nbytes // 65536))  # ~64 KB batches
    if kind == "tiktoken":
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(GPT2, "vocab.bpe"),
                                                os.path.join(GPT2, "encoder.json"))
        enc = tiktoken.Encoding("gpt2", pat_str=PAT, mergeable_ranks=ranks,
                                special_tokens={"<|endoftext|>": 50256})
        if threads == 1:
            fn = lambda: enc.encode_ordinary(text)  # noqa: E731
        else:
            fn = lambda: [i for c in enc.encode_ordinary_batch(small, num_threads=threads) for i in c]  # noqa: E731
    elif kind == "hf":
        from tokenizers import ByteLevelBPETokenizer
        hf = ByteLevelBPETokenizer(os.path.join(GPT2, "encoder.json"), os.path.join(GPT2, "vocab.bpe"))
        fn = lambda: [i for e in hf.encode_batch(small) for i in e.ids]  # noqa: E731
    elif kind == "hf_train":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        def fn():
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tr = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                     initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator(small, tr)
            return tok.get_vocab_size()
    vals, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        vals.append(dt if kind == "hf_train" else nbytes / 1e6 / dt)
    if kind == "hf_train":
        print(json.dumps({"value": statistics.median(vals), "n": out}))
    else:
        h = 1469598103934665603
        for i in out:
            h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        print(json.dumps({"value": statistics.median(vals), "n": len(out), "fnv": "%016x" % h}))


def run_child(kind, threads, path, runs, vocab=0):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    r = subprocess.run([sys.executable, __file__, "--child", kind, str(threads), path, str(runs), str(vocab)],
                       env=env, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def run_tl(exe, args):
    r = subprocess.run([exe] + args, check=True, capture_output=True, text=True).stdout.split()
    return r


def merge_results(path, entries):
    try:
        cur = json.load(open(path))
    except (OSError, ValueError):
        cur = []
    keys = {(e["bench"], e["metric"], e["anchor_name"]) for e in entries}
    cur = [e for e in cur if (e.get("bench"), e.get("metric"), e.get("anchor_name")) not in keys] + entries
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(cur, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        k, t, p, r, v = sys.argv[2:7]
        child(k, int(t), p, int(r), int(v))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=float, default=6)
    ap.add_argument("--train-mb", type=float, default=3)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(GPT2, "encoder.json")):
        print("SKIP: bench/tokenizer: ../shared/data/gpt2 is absent")
        return
    text = corpus(a.mb)
    tdir = tempfile.mkdtemp()
    path = os.path.join(tdir, "text.txt")
    open(path, "wb").write(text.encode())
    tpath = os.path.join(tdir, "train.txt")
    open(tpath, "wb").write(corpus(a.train_mb).encode())
    nbytes = len(text.encode())
    rows, entries = [], []
    try:
        for th in (1, 2):
            r = run_tl(a.exe, ["--threads", str(th), GPT2, path, str(a.runs)])
            tl = {"value": float(r[2]), "n": int(r[4]), "fnv": r[6]}
            for name, anchor in (("tiktoken", "tiktoken"), ("hf", "hf_tokenizers")):
                x = run_child(name, th, path, a.runs)
                same = x["n"] == tl["n"] and x["fnv"] == tl["fnv"]
                rows.append((f"encode MB/s, {th} thread{'s' if th > 1 else ''}", anchor, tl["value"], x["value"], same))
                if not same:
                    print(f"WARNING: {anchor} ids differ from tl's ({x['n']} vs {tl['n']})")
                entries.append({"bench": "tokenizer", "metric": f"encode_mb_s_{th}t", "tl": round(tl["value"], 2),
                                "anchor_name": anchor, "anchor": round(x["value"], 2),
                                "ratio": round(tl["value"] / x["value"], 4)})
        truns = max(1, min(a.runs, 5))
        for vocab in (4096, 16384):
            r = run_tl(a.exe, ["--train", str(vocab), tpath, str(truns), "hf"])
            tl_s = float(r[2])
            for th in (1, 2):
                x = run_child("hf_train", th, tpath, truns, vocab)
                anchor = f"hf_tokenizers_{th}t"
                rows.append((f"train {vocab} s (tl 1 thread)", anchor, tl_s, x["value"], True))
                entries.append({"bench": "tokenizer", "metric": f"train_s_{vocab}", "tl": round(tl_s, 3),
                                "anchor_name": anchor, "anchor": round(x["value"], 3),
                                "ratio": round(x["value"] / tl_s, 4)})
    finally:
        for p in (path, tpath):
            os.unlink(p)
        os.rmdir(tdir)
    print(f"tokenizer benchmark: GPT-2 encode of {nbytes / 1e6:.2f} MB, training on {a.train_mb} MB; "
          f"median of {a.runs} ({os.cpu_count()} CPUs)")
    print(f"  {'metric':30s} {'anchor':18s} {'tl':>9s} {'anchor':>9s} {'ratio':>7s}  ids")
    for m, an, tlv, av, same in rows:
        ratio = av / tlv if m.startswith("train") else tlv / av
        print(f"  {m:30s} {an:18s} {tlv:9.2f} {av:9.2f} {ratio:6.2f}x  {'same' if same else 'DIFFER'}")
    merge_results(os.environ.get("RESULTS", os.path.join(ROOT, "bench", "results.json")), entries)
    print("  (ratio > 1: tl better; merged into bench/results.json)")


if __name__ == "__main__":
    main()
