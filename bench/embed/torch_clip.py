#!/usr/bin/python3
"""torch_clip.py - the PyTorch side of bench/embed/run.sh: the same CLIP forward as
tools/ref_clip.py (written from transformers' modeling_clip.py), on the same weights, in
float32 or bfloat16 (weights and activations cast, as model.to(torch.bfloat16) does).
usage: torch_clip.py MODEL_DIR fp32|bf16 images BATCH SECONDS  |  ... text - SECONDS
Prints "images B <images/s>" or "text <median ms> <p90 ms>" like bench_embed."""
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import ref_clip  # noqa: E402


def image_features(W, vc, pixels):
    B = pixels.shape[0]
    pe = torch.nn.functional.conv2d(pixels, W["vision_model.embeddings.patch_embedding.weight"],
                                    stride=vc["patch_size"])
    pe = pe.flatten(2).transpose(1, 2)
    cls = W["vision_model.embeddings.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, pe], dim=1) + W["vision_model.embeddings.position_embedding.weight"]
    eps = vc["layer_norm_eps"]
    x = ref_clip.layer_norm(x, W["vision_model.pre_layrnorm.weight"],
                            W["vision_model.pre_layrnorm.bias"], eps)
    x = ref_clip.encoder(x, W, "vision_model", vc, causal=False)
    pooled = ref_clip.layer_norm(x[:, 0, :], W["vision_model.post_layernorm.weight"],
                                 W["vision_model.post_layernorm.bias"], eps)
    f = pooled @ W["visual_projection.weight"].T
    return f / f.norm(dim=-1, keepdim=True)


def main():
    d, prec, what, batch, seconds = sys.argv[1:6]
    seconds = float(seconds)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    W = {k: torch.as_tensor(v).to(dtype) for k, v in ref_clip.load_weights(d).items()
         if torch.as_tensor(v).is_floating_point()}
    tc, vc, _ = ref_clip.load_config(d)
    with torch.inference_mode():
        if what == "images":
            B = int(batch)
            s = vc["image_size"]
            px = torch.randn(B, 3, s, s).to(dtype)
            image_features(W, vc, px)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                image_features(W, vc, px)
                n += 1
            print("images %d %.2f" % (B, B * n / (time.perf_counter() - t0)))
        else:
            tok = ref_clip.Tokenizer(d)
            q = "a photo of a cat sitting on a red sofa"
            ms = []
            t0 = time.perf_counter()
            while len(ms) < 200 and (len(ms) < 20 or time.perf_counter() - t0 < seconds):
                t = time.perf_counter()
                ref_clip.text_features(W, tc, tok.encode(q))
                ms.append(1000 * (time.perf_counter() - t))
            ms.sort()
            print("text %.3f %.3f" % (ms[len(ms) // 2], ms[len(ms) * 9 // 10]))


if __name__ == "__main__":
    main()
