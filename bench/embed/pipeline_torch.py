#!/usr/bin/python3
"""The baseline of bench/embed/pipeline.sh: 12 MP JPEG files to L2-normalised CLIP vectors
the usual Python way: PIL with draft mode (JPEG DCT scaling) + exif_transpose, resize of the
shortest edge to the model size with PIL bicubic, centre crop, normalise (CLIPImageProcessor's
steps), then the image tower in PyTorch (bf16 or fp32) in batches of 16. A SigLIP / SigLIP 2
folder (config.json model_type siglip*) is SiglipImageProcessor's way instead: resize to the
square with its resample, no crop, its mean and std; then torch_siglip.py's tower and head.
With OUTDIR, the same work as `shoebox index` with a model: per photo, what
bench/index/pil_baseline.py does (read, xxh3-128 hash, EXIF, draft to 1024, exif_transpose,
thumbnails of 1024 and 256 px saved as JPEG quality 85) plus the model preprocessing above
from that same decode, then the tower.
usage: pipeline_torch.py MODEL_DIR FOLDER fp32|bf16 [OUTDIR]
  -> prints "<photos> <seconds> <photos/s> <CPU seconds>" (weights loaded before the clock) """
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageOps

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "index"))
import torch_clip  # noqa: E402
import torch_siglip  # noqa: E402
import ref_siglip  # noqa: E402
import ref_clip  # noqa: E402  (tools/, put on the path by torch_clip)
from pil_baseline import thumbnails  # noqa: E402  (the same work as bench/index)


SQUARE = None  # SigLIP: the PIL resample filter of its square resize; None: CLIP's steps


def preprocess(path, size, mean, std):
    im = Image.open(path)
    im.draft("RGB", (size, size))
    im = ImageOps.exif_transpose(im).convert("RGB")
    return model_input(im, size, mean, std)


def same_work(path, outdir, size, mean, std):
    """pil_baseline's steps, then the model input from the same decode."""
    return model_input(thumbnails(path, outdir), size, mean, std)


def model_input(im, size, mean, std):
    if SQUARE is not None:
        a = np.asarray(im.resize((size, size), SQUARE), dtype=np.float32) / 255.0
        return ((a - mean) / std).transpose(2, 0, 1)
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    a = np.asarray(im, dtype=np.float32) / 255.0
    return ((a - mean) / std).transpose(2, 0, 1)


def main():
    model, folder, prec = sys.argv[1:4]
    outdir = sys.argv[4] if len(sys.argv) > 4 else None
    if outdir:
        os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    W = {k: torch.as_tensor(v).to(dtype) for k, v in ref_clip.load_weights(model).items()
         if torch.as_tensor(v).is_floating_point()}
    pp = json.load(open(os.path.join(model, "preprocessor_config.json")))
    with open(os.path.join(model, "config.json")) as f:
        siglip = json.load(f).get("model_type", "").startswith("siglip")
    if siglip:
        global SQUARE
        SQUARE = pp.get("resample", Image.BICUBIC)
        _, vc = ref_siglip.load_config(model)
        tower = torch_siglip.image_features
    else:
        _, vc, _ = ref_clip.load_config(model)
        tower = torch_clip.image_features
    size = vc.get("image_size", 224)
    mean = np.array(pp.get("image_mean", [0.4815, 0.4578, 0.4082]), dtype=np.float32)
    std = np.array(pp.get("image_std", [0.2686, 0.2613, 0.2758]), dtype=np.float32)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    t0 = time.time()
    c0 = time.process_time()
    out = []
    with torch.no_grad():
        for i in range(0, len(files), 16):
            if outdir:
                px = np.stack([same_work(f, outdir, size, mean, std) for f in files[i:i + 16]])
            else:
                px = np.stack([preprocess(f, size, mean, std) for f in files[i:i + 16]])
            out.append(tower(W, vc, torch.as_tensor(px).to(dtype)).float())
    dt = time.time() - t0
    cpu = time.process_time() - c0
    print(f"{len(files)} {dt:.3f} {len(files) / dt:.2f} {cpu:.3f}")


if __name__ == "__main__":
    main()
