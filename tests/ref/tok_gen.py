#!/usr/bin/env python3
"""Reference GPT-2 token ids from tiktoken, for tests/unit/test_tokenizer.c.

Run by hand from the repository root (never by make test):

    bench/.venv/bin/python tests/ref/tok_gen.py

tiktoken's GPT-2 encoding is built OFFLINE from ../shared/data/gpt2 (encoder.json,
vocab.bpe). The corpus is files already on the machine, listed explicitly in the output:
the fortunes corpus (text files), Tiny Shakespeare, the GPT-2 files themselves (JSON with
escapes, and the merges, full of non-ASCII), the project's own sources (*.c, *.h, *.tl,
*.md) and tests/ref/tok_unicode.txt (emoji, CJK, combining marks, long runs of white space
and digits). Files that are not valid UTF-8 are left out (tiktoken encodes str).

Writes
  tests/ref/tok_gpt2.ref      one line per input:
                              file <path> <bytes> <sha256(bytes)> <n ids> <sha256(ids)>
                              where the ids are hashed as little-endian int32
  tests/ref/tok_unicode.ids   the full ids of tok_unicode.txt, one per line

"<|endoftext|>" in a text is the special token 50256 (allowed_special), as tl does.
The C test recomputes ids for every input whose bytes still hash the same, and reports
inputs that changed (a source file edited since) as skipped, not failed.
"""
import glob
import hashlib
import os
import struct
import sys

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data")
PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def encoding():
    g = os.path.join(DATA, "gpt2")
    ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(g, "vocab.bpe"),
                                            os.path.join(g, "encoder.json"))
    return tiktoken.Encoding("gpt2", pat_str=PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def inputs():
    """(path as the C test opens it, from the repository root) in a fixed order."""
    out = ["tests/ref/tok_unicode.txt"]
    fort = "/usr/share/games/fortunes"
    for p in sorted(glob.glob(fort + "/*")):
        if os.path.isfile(p) and not os.path.islink(p) and not p.endswith(".dat"):
            out.append(p)
    out.append("../shared/data/tinyshakespeare.txt")
    out.append("../shared/data/gpt2/encoder.json")
    out.append("../shared/data/gpt2/vocab.bpe")
    src = []
    for d in ["compiler", "runtime", "dsl", "stdlib", "examples", "docs", "tests", "bench",
              "scripts", "."]:
        for ext in ["c", "h", "tl", "md"]:
            pat = os.path.join(ROOT, d, "*." + ext) if d == "." else \
                os.path.join(ROOT, d, "**", "*." + ext)
            for p in glob.glob(pat, recursive=True):
                rel = os.path.relpath(p, ROOT)
                if rel.startswith(("build", ".", "bench/.venv")) and rel != ".":
                    continue
                src.append(rel)
    out += sorted(set(src))
    return out


def main():
    os.chdir(ROOT)
    enc = encoding()
    lines = [f"# tests/ref/tok_gen.py, tiktoken {tiktoken.__version__}: "
             "file <path> <bytes> <sha256 bytes> <n ids> <sha256 ids as int32 LE>"]
    total = 0
    for path in inputs():
        try:
            data = open(path, "rb").read()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        ids = enc.encode(text, allowed_special={"<|endoftext|>"})
        blob = struct.pack(f"<{len(ids)}i", *ids)
        lines.append(f"file {path} {len(data)} {hashlib.sha256(data).hexdigest()} "
                     f"{len(ids)} {hashlib.sha256(blob).hexdigest()}")
        total += len(data)
        if path == "tests/ref/tok_unicode.txt":
            with open("tests/ref/tok_unicode.ids", "w") as f:
                f.write("\n".join(map(str, ids)) + "\n")
    with open("tests/ref/tok_gpt2.ref", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines) - 1} inputs, {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
