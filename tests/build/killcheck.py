#!/usr/bin/env python3
"""Checks, after a SIGKILL, that the newest checkpoint in a directory is complete: its
header parses, every tensor's data lies inside the file, and the file is exactly as long
as the header says. Uses only the standard library (no safetensors package needed).
Usage: killcheck.py CKPT_DIR  -> prints the newest step, exits 1 when it is broken."""
import json, os, re, struct, sys

d = sys.argv[1]
steps = sorted((int(m.group(1)), f) for f in os.listdir(d) if (m := re.fullmatch(r"ckpt-(\d+)\.safetensors", f))) if os.path.isdir(d) else []
if not steps:
    print("none")
    sys.exit(0)
step, name = steps[-1]
path = os.path.join(d, name)
data = open(path, "rb").read()
try:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    assert len(data) == 8 + n + end, (len(data), 8 + n + end)
    assert header["__metadata__"]["tl.step"] == str(step), header["__metadata__"]
except Exception as e:  # noqa: BLE001 - any failure means a broken checkpoint
    print(f"BROKEN {path}: {e}")
    sys.exit(1)
print(step)
