#!/usr/bin/python3
"""torch_vlm.py MODEL_DIR THREADS [N] - the same caption as bench_vlm with Debian's PyTorch, in
float32: tools/ref_vlm.py's Idefics3 path (SigLIP tower, post_layernorm, pixel shuffle,
projection; modeling_idefics3.py's math) and tools/ref_lm.py's decoder with a KV cache; prints
image encode, prefill and decode rate (N - 1 cached steps), best of 3 each."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import ref_lm  # noqa: E402
import ref_vlm  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(sys.argv[2]))
N = int(sys.argv[3]) if len(sys.argv) > 3 else 30
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
W = {k: v.float() for k, v in ref_lm.read_safetensors(os.path.join(d, "model.safetensors")).items()}
v = cfg["vision_config"]
dec = ref_vlm.Decoder(cfg["text_config"], W, "model.text_model.", "lm_head.weight")
orig_inv = dec.inv_freq
dec.inv_freq = lambda n: orig_inv(n).float()
rng = np.random.default_rng(0)
pix = rng.standard_normal((3, v["image_size"], v["image_size"])).astype(np.float32)
R = (v["image_size"] // v["patch_size"]) ** 2 // cfg["scale_factor"] ** 2
prompt = [5] * 4 + [-1] * R + [7] * 20  # the prompt length bench_vlm reports, roughly
V = cfg["text_config"]["vocab_size"]


def encode():
    hs = ref_vlm.vision_hidden_states(pix, W, "model.vision_model.", v, "idefics3")
    f = ref_vlm.ln(hs[-1], W, "model.vision_model.post_layernorm", v["layer_norm_eps"])
    f = ref_vlm.pixel_shuffle(f[None], cfg["scale_factor"])[0]
    return f @ W["model.connector.modality_projection.proj.weight"].T


with torch.no_grad():
    best = {}
    for _ in range(3):
        t0 = time.perf_counter()
        rows = encode()
        t1 = time.perf_counter()
        emb = [rows[k - 4].tolist() if i < 0 else None for k, i in enumerate(prompt)]
        emb = [e if e is not None else [0.0] * dec.C for e in emb]
        z, cache = dec.forward(prompt, emb, None, 0)
        t2 = time.perf_counter()
        pos = len(prompt)
        tok = int(torch.argmax(z))
        for i in range(N - 1):
            z, cache = dec.forward([tok % V], None, cache, pos)
            tok = int(torch.argmax(z))
            pos += 1
        t3 = time.perf_counter()
        for k, val in (("encode", t1 - t0), ("prefill", t2 - t1), ("decode", t3 - t2),
                       ("caption", t3 - t0)):
            best[k] = min(best.get(k, 1e30), val)
    print("torch encode %.3f s" % best["encode"])
    print("torch prefill %d %.3f s" % (len(prompt), best["prefill"]))
    print("torch decode %d %.1f tokens/s" % (N - 1, (N - 1) / best["decode"]))
    print("torch caption %d tokens %.3f s" % (N, best["caption"]))
