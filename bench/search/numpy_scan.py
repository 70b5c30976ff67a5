#!/usr/bin/python3
"""The baseline for bench/search: the scan the way rclip does it, a float32 numpy matrix of
unit vectors times the query, then the top k (argpartition + sort). Usage: numpy_scan.py N [D]"""
import sys
import time

import numpy as np


def main():
    n = int(sys.argv[1])
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    rng = np.random.default_rng(1)
    m = rng.standard_normal((n, d), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    times, cpu = [], []
    for i in range(63):
        q = rng.standard_normal(d, dtype=np.float32)
        q /= np.linalg.norm(q)
        t0, c0 = time.perf_counter(), time.process_time()
        s = m @ q
        top = np.argpartition(-s, 20)[:20]
        top = top[np.argsort(-s[top])]
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    times.sort()
    cpu.sort()
    print(f"{n:8d} x {d} numpy float32 (rclip's way)     : p50 {times[len(times) // 2]:7.2f} ms  "
          f"p99 {times[len(times) * 99 // 100]:7.2f} ms  cpu p50 {cpu[len(cpu) // 2]:7.2f} ms  "
          f"matrix {m.nbytes / 1048576:.0f} MiB")


if __name__ == "__main__":
    main()
