#!/usr/bin/python3
"""torch_moondream.py MODEL_DIR THREADS [N [WxH]] - the caption bench_vlm makes, with Debian's
PyTorch in float32 (weights widened from the F16 file), computed as vikhyat/moondream's
moondream/torch code does: overlap crops (PIL LANCZOS), the vision encoder on all crops in
one batch, stitching + adaptive pooling + proj_mlp (tools/ref_moondream.py's math), then the
Phi-style decoder with a KV cache (prefill of [BOS, 729 rows, caption template] with the
bidirectional image prefix, N - 1 cached decode steps).
Prints image encode (crops included), prefill and decode rate, best of 3 each."""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import ref_moondream as rm  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(sys.argv[2]))
N = int(sys.argv[3]) if len(sys.argv) > 3 else 30
Wd, Ht = (int(v) for v in (sys.argv[4] if len(sys.argv) > 4 else "640x480").split("x"))
d = sys.argv[1]
VC = {"enc_dim": 1152, "enc_patch_size": 14, "enc_n_layers": 27, "enc_ff_dim": 4304,
      "enc_n_heads": 16, "crop_size": 378, "max_crops": 12, "overlap_margin": 4}
TH, TL = 32, 24


def load(path):  # F16 file -> float32 tensors, one at a time (ref_lm's reader widens to f64)
    raw = np.memmap(path, np.uint8, "r")
    n = int(np.frombuffer(raw[:8], "<u8")[0])
    header = json.loads(bytes(raw[8:8 + n]))
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        a = np.frombuffer(raw[8 + n + b0:8 + n + b1], "<f2").astype(np.float32)
        out[name] = torch.from_numpy(a.reshape(e["shape"]))
    return out


W = load(os.path.join(d, "model.safetensors"))
W["model.vision.pos_emb"] = W["model.vision.pos_emb"][0]
y, x = np.mgrid[0:Ht, 0:Wd]
img = Image.fromarray(np.stack([x * 255 // max(Wd - 1, 1), y * 255 // max(Ht - 1, 1),
                                ((x // 40 + y // 40) % 2) * 200], -1).astype(np.uint8), "RGB")
PROMPT = [198, 198, 24334, 1159, 25]
BOS = 50256


def lin(x, name):
    return F.linear(x, W[name + ".weight"], W[name + ".bias"])


def ln(x, name):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], 1e-5)


def mlp(x, name):
    return lin(F.gelu(lin(x, name + ".fc1"), approximate="tanh"), name + ".fc2")


def sdpa(q, k, v, mask=None):  # torch 1.13 has no F.scaled_dot_product_attention
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def vision(crops):
    p, C, H = 14, 1152, 16
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    x = (x - 0.5) / 0.5
    B, G = x.shape[0], 27
    x = x.reshape(B, 3, G, p, G, p).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, 3 * p * p)
    x = lin(x, "model.vision.patch_emb") + W["model.vision.pos_emb"]
    for i in range(27):
        b = "model.vision.blocks.%d." % i
        q, k, v = lin(ln(x, b + "ln1"), b + "attn.qkv").chunk(3, dim=-1)
        sh = lambda t: t.reshape(B, G * G, H, C // H).transpose(1, 2)  # noqa: E731
        a = sdpa(sh(q), sh(k), sh(v))
        x = x + lin(a.transpose(1, 2).reshape(B, G * G, C), b + "attn.proj")
        x = x + mlp(ln(x, b + "ln2"), b + "mlp")
    return ln(x, "model.vision.post_ln")


def encode():
    crops, tiling = rm.overlap_crops(img, VC)
    f = vision(crops)
    rec = rm.reconstruct(f[1:].reshape(-1, 27, 27, 1152), tiling, 4)
    rec = F.adaptive_avg_pool2d(rec.permute(2, 0, 1), (27, 27)).permute(1, 2, 0).reshape(729, -1)
    return mlp(torch.cat([f[0], rec], -1), "model.vision.proj_mlp"), tiling


rot = 32
inv = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))


def rope(x, pos):  # x (H, T, 64): rotate_half on the first 32 dims (same dot products)
    ang = pos.float()[:, None] * inv[None]
    c, s = torch.cos(ang), torch.sin(ang)
    a, b, rest = x[..., :16], x[..., 16:32], x[..., 32:]
    return torch.cat([a * c - b * s, a * s + b * c, rest], -1)


def decoder(emb, cache, pos, mask):
    T = emb.shape[0]
    x = emb
    p = torch.arange(pos, pos + T)
    for i in range(TL):
        b = "model.text.blocks.%d." % i
        h = ln(x, b + "ln")
        q, k, v = [t.reshape(T, TH, 64).transpose(0, 1) for t in
                   lin(h, b + "attn.qkv").chunk(3, dim=-1)]
        q, k = rope(q, p), rope(k, p)
        if cache[i] is not None:
            k = torch.cat([cache[i][0], k], 1)
            v = torch.cat([cache[i][1], v], 1)
        cache[i] = (k, v)
        a = sdpa(q, k, v, mask)
        x = x + lin(a.transpose(0, 1).reshape(T, 2048), b + "attn.proj") + mlp(h, b + "mlp")
    return lin(ln(x[-1], "model.text.post_ln"), "model.text.lm_head")


with torch.no_grad():
    best = {}
    for _ in range(3):
        t0 = time.perf_counter()
        rows, tiling = encode()
        t1 = time.perf_counter()
        emb = torch.cat([W["model.text.wte"][[BOS]], rows, W["model.text.wte"][PROMPT]], 0)
        T = emb.shape[0]
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        mask[:730, :730] = True
        cache = [None] * TL
        z = decoder(emb, cache, 0, mask)
        t2 = time.perf_counter()
        pos, tok = T, int(torch.argmax(z))
        for _ in range(N - 1):
            z = decoder(W["model.text.wte"][[tok]], cache, pos, None)
            tok = int(torch.argmax(z))
            pos += 1
        t3 = time.perf_counter()
        for k, val in (("encode", t1 - t0), ("prefill", t2 - t1), ("decode", t3 - t2),
                       ("caption", t3 - t0)):
            best[k] = min(best.get(k, 1e30), val)
    print("torch tiling %s" % (tiling,))
    print("torch encode %.3f s" % best["encode"])
    print("torch prefill %d %.3f s" % (T, best["prefill"]))
    print("torch decode %d %.1f tokens/s" % (N - 1, (N - 1) / best["decode"]))
    print("torch caption %d tokens %.3f s" % (N, best["caption"]))
