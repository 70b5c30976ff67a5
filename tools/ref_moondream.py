#!/usr/bin/python3
"""ref_moondream.py - independent reference outputs for tests/data/vlm/moondream/ (written by
tools/gen_moondream.py), in float64 torch, written from vikhyat/moondream's moondream/torch/
definitions as the 2025 revisions of vikhyatk/moondream2 (2025-01-09 onwards) use them - nothing
is imported from there or from shoebox:

  image_crops.py  select_tiling, overlap_crop_image (PIL LANCZOS resizes - the path taken when
                  pyvips is absent - global crop + overlapping local crops of crop_size with a
                  margin of overlap_margin patches), reconstruct_from_crops (on patch features,
                  patch_size 1)
  vision.py       prepare_crops (x / 255 - 0.5) / 0.5 (the real code does this in float16),
                  rearrange into (c, p1, p2) patches, patch_emb, + pos_emb, pre-LN blocks with
                  fused qkv and gelu(tanh) MLP, post_ln; vision_projection: local features
                  stitched, adaptive_avg_pool2d back to the G x G grid (the code pools to
                  enc_n_layers, which is 27 = G in the real model), concat [global, local], proj_mlp
  text.py         Phi-style blocks: one LayerNorm, attention and MLP in parallel on it,
                  x + attn + mlp; fused qkv; rotary on the first D/2 dims of each head (rope.py:
                  freqs over dim D/2, halves taken as real/imag, output interleaved); attention
                  mask causal except the prefix (BOS + image rows, prefix_attn) which attends
                  bidirectionally; post_ln, lm_head with bias; LayerNorm eps 1e-5 everywhere
  moondream.py    encode_image: [BOS embedding, image rows] at positions 0..R; caption():
                  templates["caption"]["normal"] ids after it; query(): templates["query"]
                  prefix + tokenizer.encode(question) + suffix; greedy (temperature 0) until eos
The tokenizer (for the query ids and the decoded text) is tools/ref_lm.py's independent
tokenizer.json implementation. Writes tests/data/vlm/moondream/ref.json.
Run: /usr/bin/python3 tools/ref_moondream.py (after gen_moondream.py).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VLM = os.path.join(ROOT, "tests", "data", "vlm")
D = os.path.join(VLM, "moondream")
torch.set_default_dtype(torch.float64)
EPS = 1e-5
QUESTION = "What is in the photo?"


def select_tiling(h, w, crop, max_crops):
    if h <= crop or w <= crop:
        return (1, 1)
    min_h, min_w = math.ceil(h / crop), math.ceil(w / crop)
    if min_h * min_w > max_crops:
        ratio = math.sqrt(max_crops / (min_h * min_w))
        return (max(1, math.floor(min_h * ratio)), max(1, math.floor(min_w * ratio)))
    h_t = max(math.floor(math.sqrt(max_crops * h / w)), min_h)
    w_t = max(math.floor(math.sqrt(max_crops * w / h)), min_w)
    if h_t * w_t > max_crops:
        if w_t > h_t:
            w_t = math.floor(max_crops / h_t)
        else:
            h_t = math.floor(max_crops / w_t)
    return (max(1, h_t), max(1, w_t))


def overlap_crops(img, vc):
    S, p, m = vc["crop_size"], vc["enc_patch_size"], vc["overlap_margin"]
    arr = np.array(img)
    H, W = arr.shape[:2]
    margin = p * m
    window = (S // p - 2 * m) * p
    tiling = select_tiling(H - 2 * margin, W - 2 * margin, window, vc["max_crops"])
    crops = np.zeros((tiling[0] * tiling[1] + 1, S, S, 3), np.uint8)
    th, tw = tiling[0] * window + 2 * margin, tiling[1] * window + 2 * margin
    big = np.array(img.resize((tw, th), Image.Resampling.LANCZOS))
    crops[0] = np.array(img.resize((S, S), Image.Resampling.LANCZOS))
    for i in range(tiling[0]):
        for j in range(tiling[1]):
            y0, x0 = i * window, j * window
            reg = big[y0:min(y0 + S, th), x0:min(x0 + S, tw)]
            crops[1 + i * tiling[1] + j, :reg.shape[0], :reg.shape[1]] = reg
    return crops, tiling


def layer_norm(x, W, name):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], EPS)


def linear(x, W, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def mlp(x, W, name):
    return linear(gelu_tanh(linear(x, W, name + ".fc1")), W, name + ".fc2")


def vision_encoder(crops, W, vc):
    p, C, H = vc["enc_patch_size"], vc["enc_dim"], vc["enc_n_heads"]
    x = torch.tensor(crops.astype(np.float64)).permute(0, 3, 1, 2) / 255.0
    x = (x - 0.5) / 0.5
    B, _, S, _ = x.shape
    G = S // p
    x = x.reshape(B, 3, G, p, G, p).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, 3 * p * p)
    x = linear(x, W, "model.vision.patch_emb") + W["model.vision.pos_emb"]
    for i in range(vc["enc_n_layers"]):
        b = "model.vision.blocks.%d." % i
        h = layer_norm(x, W, b + "ln1")
        q, k, v = linear(h, W, b + "attn.qkv").chunk(3, dim=-1)
        sh = lambda t: t.reshape(B, G * G, H, C // H).transpose(1, 2)  # noqa: E731
        s = sh(q) @ sh(k).transpose(-1, -2) / math.sqrt(C // H)
        a = (torch.softmax(s, -1) @ sh(v)).transpose(1, 2).reshape(B, G * G, C)
        x = x + linear(a, W, b + "attn.proj")
        x = x + mlp(layer_norm(x, W, b + "ln2"), W, b + "mlp")
    return layer_norm(x, W, "model.vision.post_ln")


def reconstruct(local, tiling, m):
    th, tw = tiling
    n, G, _, C = local.shape
    out = torch.zeros(((G - 2 * m) * th + 2 * m, (G - 2 * m) * tw + 2 * m, C))
    for i in range(n):
        ty, tx = i // tw, i % tw
        x0 = 0 if tx == 0 else m
        x1 = G if tx == tw - 1 else G - m
        y0 = 0 if ty == 0 else m
        y1 = G if ty == th - 1 else G - m
        oy, ox = ty * (G - 2 * m), tx * (G - 2 * m)
        out[oy + y0:oy + y1, ox + x0:ox + x1] = local[i, y0:y1, x0:x1]
    return out


def image_rows(img, W, vc):
    crops, tiling = overlap_crops(img, vc)
    feats = vision_encoder(crops, W, vc)
    G = vc["crop_size"] // vc["enc_patch_size"]
    C = vc["enc_dim"]
    local = feats[1:].reshape(-1, G, G, C)
    rec = reconstruct(local, tiling, vc["overlap_margin"])
    rec = F.adaptive_avg_pool2d(rec.permute(2, 0, 1), (G, G)).permute(1, 2, 0).reshape(G * G, C)
    rows = mlp(torch.cat([feats[0], rec], -1), W, "model.vision.proj_mlp")
    return rows, tiling, crops


def rope(x, pos, D):
    """rope.py apply_rotary_emb: x (T, H, D); rotates x[..., :D/2] with freqs over dim D/2."""
    rot = D // 2
    freqs = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float32)[: rot // 2] / rot))
    ang = pos.to(torch.float32)[:, None] * freqs[None]
    cos = torch.cos(ang).to(torch.float64)[:, None, :]
    sin = torch.sin(ang).to(torch.float64)[:, None, :]
    xr, xp = x[..., :rot], x[..., rot:]
    a, b = xr[..., : rot // 2], xr[..., rot // 2:]
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    return torch.cat([out, xp], -1)


def text_logits(emb, W, tc, prefix):
    """All rows at once (positions 0..T-1); logits of every row."""
    T, C = emb.shape
    H = tc["n_heads"]
    Dh = C // H
    pos = torch.arange(T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    mask[:prefix, :prefix] = True
    x = emb
    for i in range(tc["n_layers"]):
        b = "model.text.blocks.%d." % i
        h = layer_norm(x, W, b + "ln")
        q, k, v = [t.reshape(T, H, Dh) for t in linear(h, W, b + "attn.qkv").chunk(3, dim=-1)]
        q, k = rope(q, pos, Dh), rope(k, pos, Dh)
        s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(Dh)
        s = s.masked_fill(~mask[None], float("-inf"))
        a = torch.einsum("hts,shd->thd", torch.softmax(s, -1), v).reshape(T, C)
        x = x + linear(a, W, b + "attn.proj") + mlp(h, W, b + "mlp")
    return linear(layer_norm(x, W, "model.text.post_ln"), W, "model.text.lm_head")


def generate(rows, prompt, W, tc, tok_cfg, steps, penalty):
    """Greedy: prefix [BOS, rows], prompt ids, then steps argmax tokens (eos ends, included).
    penalty != 1: HF RepetitionPenaltyLogitsProcessor over the prompt ids and the output."""
    wte = W["model.text.wte"]
    bos, eos = tok_cfg["bos_id"], tok_cfg["eos_id"]
    prefix = 1 + rows.shape[0]
    seq = [bos] + list(prompt)
    first, out = None, []
    for _ in range(steps):
        emb = torch.cat([wte[seq[:1]], rows, wte[seq[1:]]], 0)
        z = text_logits(emb, W, tc, prefix)[-1].clone()
        if first is None:
            first = z.clone()
        if penalty != 1.0:
            for i in set(seq):  # BOS, prompt ids and the output so far
                z[i] = z[i] / penalty if z[i] > 0 else z[i] * penalty
        t = int(torch.argmax(z))
        out.append(t)
        seq.append(t)
        if t == eos:
            break
    return first, out


def main():
    cfg = json.load(open(os.path.join(D, "config.json")))["config"]
    tc, vc, kc = cfg["text"], cfg["vision"], cfg["tokenizer"]
    W = ref_lm.read_safetensors(os.path.join(D, "model.safetensors"))
    W["model.vision.pos_emb"] = W["model.vision.pos_emb"][0]
    tok = ref_lm.Tok(D)
    ref = {"penalty": 1.3, "cases": []}
    cases = [("moondream_photo.png", "caption"), ("photo.png", "caption"),
             ("photo.png", "query")]
    for photo, skill in cases:
        img = Image.open(os.path.join(VLM, photo)).convert("RGB")
        rows, tiling, crops = image_rows(img, W, vc)
        if skill == "caption":
            prompt = kc["templates"]["caption"]["normal"]
        else:
            prompt = (kc["templates"]["query"]["prefix"] + tok.encode(QUESTION, False) +
                      kc["templates"]["query"]["suffix"])
        logits, greedy = generate(rows, prompt, W, tc, kc, 20, 1.0)
        _, greedy_pen = generate(rows, prompt, W, tc, kc, 20, 1.3)
        text = tok.decode([i for i in greedy if i in tok.id2tok], True)
        ref["cases"].append({
            "photo": photo, "skill": skill, "question": QUESTION if skill == "query" else None,
            "tiling": list(tiling), "n_crops": int(crops.shape[0]),
            "crop_means": [float(c.astype(np.float64).mean()) for c in crops],
            "prompt": [kc["bos_id"]] + [-1] * rows.shape[0] + list(prompt),
            "rows_first": [float(v) for v in rows[0]], "rows_last": [float(v) for v in rows[-1]],
            "logits": [float(v) for v in logits], "greedy": greedy,
            "greedy_penalty": greedy_pen, "text": text})
        print(photo, skill, "tiling", tiling, "greedy", greedy, "pen", greedy_pen, repr(text))
    with open(os.path.join(D, "ref.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
