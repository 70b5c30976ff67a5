#!/usr/bin/python3
"""Writes N photo-like 12 MP JPEGs (4000x3000, smooth colour fields + grain + edges, quality 92,
with EXIF camera/time tags) into a folder, for bench/index. Deterministic (seeded)."""
import io
import os
import sys

import numpy as np
from PIL import Image


def photo(rng, w=4000, h=3000):
    # low-frequency colour field, upsampled: sky/ground-like gradients and blobs
    small = rng.random((12, 16, 3)) * 255
    img = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    a = np.asarray(img, dtype=np.int16)
    # mid-frequency detail (texture) and sensor grain
    mid = Image.fromarray((rng.random((300, 400)) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    a = a + (np.asarray(mid, dtype=np.int16)[:, :, None] - 128) // 6
    a = a + rng.integers(-6, 7, size=(h, w, 1), dtype=np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    # photos from an earlier, larger N go: the benchmarks divide by N and read the whole folder
    for f in os.listdir(out):
        if f.startswith("IMG_") and f.endswith(".JPG") and f[4:-4].isdigit() and int(f[4:-4]) >= n:
            os.remove(os.path.join(out, f))
    rng = np.random.default_rng(42)
    base = [photo(rng) for _ in range(8)]
    for i in range(n):
        path = os.path.join(out, f"IMG_{i:04d}.JPG")
        if os.path.exists(path):
            continue
        img = base[i % len(base)]
        # every file different: shift the crop a little and stamp a block
        arr = np.asarray(img).copy()
        y, x = (i * 37) % 2900, (i * 53) % 3900
        arr[y:y + 64, x:x + 64] = (i * 7 % 256, i * 13 % 256, i * 29 % 256)
        exif = Image.Exif()
        exif[0x010F] = "BenchCam"
        exif[0x0110] = "Model 12"
        exif[0x0112] = 1
        exif[0x0132] = f"2021:06:{1 + i % 28:02d} 12:{i % 60:02d}:00"
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = f"2021:06:{1 + i % 28:02d} 12:{i % 60:02d}:00"
        Image.fromarray(arr).save(path, quality=92, exif=exif)
    print(f"{n} photos in {out}")


if __name__ == "__main__":
    main()
