"""torch_attn.py — PyTorch's fused causal attention on the CPU, timed like attn_bench.c.

    torch_attn.py B H T K THREADS [REPS]

torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True) on f32
[B, H, T, K] tensors; "fwd" under no_grad, "fwdbwd" the forward and o.backward(do) with
q, k, v requiring grad. One warm-up, then REPS timed runs; prints
    fwd <median ms> <min ms>
    fwdbwd <median ms> <min ms>
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, reps):
    fn()
    ms, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(ms), min(ms), statistics.median(cpu)


def main():
    B, H, T, K, threads = (int(a) for a in sys.argv[1:6])
    reps = int(sys.argv[6]) if len(sys.argv) > 6 else 5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    q, k, v, do = (torch.rand(B, H, T, K) * 2 - 1 for _ in range(4))

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)

    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def fwdbwd():
        qg.grad = kg.grad = vg.grad = None
        o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
        o.backward(do)

    print("fwd %.4f %.4f %.4f" % timed(fwd, reps))
    print("fwdbwd %.4f %.4f %.4f" % timed(fwdbwd, reps))


if __name__ == "__main__":
    main()
