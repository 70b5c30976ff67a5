#!/usr/bin/python3
"""The baseline bench/index compares with: the same work as `shoebox index` without a model,
done with PIL the usual way: read + hash the bytes (xxh3-128 as shoebox, via Debian's
python3-xxhash; blake2b, ~4 ms more per 12 MP file, when that is missing), read EXIF, Image.draft() (JPEG DCT scaling)
+ thumbnail() to 1024 and 256 px, save both as JPEG (quality 85). Usage:
pil_baseline.py FOLDER OUTDIR [PROCESSES]. Prints: photos, seconds, photos/s, CPU seconds (all
processes)."""
import hashlib
import io
import os
import resource
import sys
import time
from multiprocessing import Pool

from PIL import Image, ImageOps

try:
    import xxhash

    def digest_of(data):
        return xxhash.xxh3_128_hexdigest(data)

except ImportError:

    def digest_of(data):
        return hashlib.blake2b(data, digest_size=16).hexdigest()


def thumbnails(path, outdir):
    """Read, hash, EXIF, the draft decode turned upright, both thumbnails saved; returns that
    decode (bench/embed/pipeline_torch.py makes its model input from it too)."""
    with open(path, "rb") as f:
        data = f.read()
    digest = digest_of(data)
    im = Image.open(io.BytesIO(data))
    exif = im.getexif()
    _ = (exif.get(0x010F), exif.get(0x0110), exif.get_ifd(0x8769).get(0x9003), exif.get(0x0112))
    im.draft("RGB", (1024, 1024))
    im = ImageOps.exif_transpose(im)
    im = im.convert("RGB")
    big = im.copy()
    big.thumbnail((1024, 1024), Image.BICUBIC)
    big.save(os.path.join(outdir, digest + "-1024.jpg"), quality=85)
    small = big.copy()
    small.thumbnail((256, 256), Image.BICUBIC)
    small.save(os.path.join(outdir, digest + "-256.jpg"), quality=85)
    return im


def work(args):
    thumbnails(*args)
    return 1


def main():
    folder, outdir = sys.argv[1], sys.argv[2]
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(outdir, exist_ok=True)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    t0 = time.time()
    c0 = time.process_time()
    if procs == 1:
        n = sum(work((p, outdir)) for p in files)
    else:
        with Pool(procs) as pool:
            n = sum(pool.map(work, [(p, outdir) for p in files], chunksize=4))
    dt = time.time() - t0
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + ch.ru_utime + ch.ru_stime
    print(f"{n} {dt:.3f} {n / dt:.2f} {cpu:.3f}")


if __name__ == "__main__":
    main()
