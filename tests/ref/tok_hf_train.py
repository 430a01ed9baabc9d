#!/usr/bin/env python3
"""Reference BPE merges from Hugging Face tokenizers' BpeTrainer on the fortunes corpus.

Run by hand (bench/.venv/bin/python tests/ref/tok_hf_train.py); writes
tests/ref/tok_hf_train.ref, which tests/unit/test_tokenizer_train.c compares tl's trainer
against (hf_ties on: the same merges; off: where the first difference is).

Settings, mirrored by the C test: ByteLevel pre-tokenizer (GPT-2's regex, no prefix
space), initial alphabet = the 256 byte-level characters, vocab_size = 256 + MERGES,
min_frequency = 2, no special tokens, no normalizer. Files: tl_data_load's rules
(runtime/data.h: walk in byte order of the relative path, skip dot-names, files with a NUL
in the first 4 KiB, symlinks to directories and to files already included), keeping only
files that are valid UTF-8 (HF takes str); the file list and sizes go into the .ref so the
C test feeds exactly these.

Format: '# comment' lines; 'file REL SIZE'; then 'merge LEFT_HEX RIGHT_HEX' per merge."""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

ROOT = "/usr/share/games/fortunes"
MERGES = 1000
HERE = os.path.dirname(os.path.abspath(__file__))


def corpus_files(root):
    out, seen = [], set()

    def walk(d, rel):
        for name in sorted(os.listdir(d), key=lambda s: s.encode()):
            if name.startswith("."):
                continue
            p, r = os.path.join(d, name), (rel + "/" + name if rel else name)
            if os.path.isdir(p):
                if not os.path.islink(p):
                    walk(p, r)
                continue
            if not os.path.isfile(p):
                continue
            st = os.stat(p)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            with open(p, "rb") as f:
                if b"\0" in f.read(4096):
                    continue
            seen.add(key)
            out.append((r, p))

    walk(root, "")
    # tl sorts by the path below the root (strcmp); sorted() over bytes is the same order
    out.sort(key=lambda x: x[0].encode())
    return out


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main():
    if not os.path.isdir(ROOT):
        sys.exit(f"{ROOT} is absent (apt-get install fortunes)")
    texts, used = [], []
    for rel, p in corpus_files(ROOT):
        data = open(p, "rb").read()
        try:
            texts.append(data.decode("utf-8"))
            used.append((rel, len(data)))
        except UnicodeDecodeError:
            pass
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tr = trainers.BpeTrainer(vocab_size=256 + MERGES, min_frequency=2, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=[])
    tok.train_from_iterator(texts, tr)
    merges = json.loads(tok.to_str())["model"]["merges"]
    dec = byte_decoder()
    out = os.path.join(HERE, "tok_hf_train.ref")
    with open(out + ".tmp", "w") as f:
        f.write(f"# tokenizers {tokenizers.__version__} BpeTrainer(vocab_size={256 + MERGES}, "
                "min_frequency=2, initial_alphabet=ByteLevel.alphabet()), ByteLevel(add_prefix_space="
                "False) pre-tokenizer, on the valid-UTF-8 text files of " + ROOT + "\n")
        for rel, size in used:
            f.write(f"file {rel} {size}\n")
        for m in merges:
            a, b = m.split(" ") if isinstance(m, str) else m
            f.write("merge %s %s\n" % (bytes(dec[c] for c in a).hex(), bytes(dec[c] for c in b).hex()))
    os.replace(out + ".tmp", out)
    print(f"wrote {out}: {len(used)} files, {len(merges)} merges")


if __name__ == "__main__":
    main()
