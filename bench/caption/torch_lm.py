#!/usr/bin/python3
"""torch_lm.py MODEL_DIR THREADS [T] [N] - the same measurements as bench_lm with Debian's
PyTorch: the reference forward of tools/ref_lm.py (modeling_llama.py's math) in float32 on
the same weights, prefill of T tokens (best of 3) and N cached decode steps (tokens/s)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import torch  # noqa: E402
import ref_lm  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(sys.argv[2]))
T = int(sys.argv[3]) if len(sys.argv) > 3 else 100
N = int(sys.argv[4]) if len(sys.argv) > 4 else 32
r = ref_lm.Ref(sys.argv[1])
r.w = {k: v.float() for k, v in r.w.items()}
ids = [(i * 7919 + 13) % r.cfg["vocab_size"] for i in range(T + N)]
orig_inv = r.inv_freq
r.inv_freq = lambda n: orig_inv(n).float()
with torch.no_grad():
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        _, cache = r.forward(ids[:T], None, None, 0)
        best = min(best, time.perf_counter() - t0)
    print("torch prefill %d %.1f ms" % (T, best * 1e3))
    rates = []
    for _ in range(3):
        _, cache = r.forward(ids[:T], None, None, 0)
        t0 = time.perf_counter()
        for i in range(N):
            _, cache = r.forward([ids[T + i]], None, cache, T + i)
        rates.append(N / (time.perf_counter() - t0))
    print("torch decode %d %.1f tokens/s" % (N, sorted(rates)[1]))
