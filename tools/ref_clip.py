#!/usr/bin/python3
"""ref_clip.py - independent reference outputs for the CLIP fixtures of tools/gen_clip.py.

Written from transformers' definitions, not from shoebox's C:
  configuration_clip.py   CLIPConfig/CLIPTextConfig/CLIPVisionConfig defaults, *_config_dict
  modeling_clip.py        CLIPVisionEmbeddings (Conv2d stride p, class token, positions),
                          CLIPAttention (q * head_dim**-0.5, softmax, causal mask over the
                          whole sequence), CLIPEncoderLayer (pre-LN), CLIPTextTransformer
                          pooling (eos_token_id == 2: argmax of ids, else first eos),
                          get_image_features / get_text_features, then L2 normalisation
  image_processing_clip.py + image_transforms.py   PIL resize of the shortest edge
                          (int(size * long / short)), center_crop ((h - ch) // 2),
                          rescale, normalize
  openai/CLIP simple_tokenizer.py   the BPE tokenizer (a plain re-implementation here)
The forward runs in torch float64. Writes tests/data/models/<name>/ref.json.
Run: /usr/bin/python3 tools/ref_clip.py (after gen_clip.py).
"""
import glob
import json
import os
import struct
import sys
import unicodedata

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "data", "models")

TEXTS = [
    "a photo of a cat",
    "A  Photo of a CAT ",
    "",
    "a dog playing in the snow",
    "sunset over the mountains, 2019",
    "my grandmother's kitchen",
    "people at the beach",
    "a red car parked on the street",
    "they're walking; it's late",
    "café crème",
    "1234567 numbers 42",
    "!!! ??? ...",
    "a very long caption " + "that keeps going and going " * 20,
    "night sky with stars",
    "birthday cake with candles",
    "hello,world",
    "ÉCOLE élève",
    "snow-covered trees",
    "a bowl of fruit: apples & oranges",
    "x",
]


# ---------------------------------------------------------------------------------------------
# safetensors + config

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        raw = data[base + b0:base + b1]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, "<f2")
        elif dt == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        elif dt == "I64":
            a = np.frombuffer(raw, "<i8")
        else:
            raise ValueError(dt)
        out[name] = torch.from_numpy(a.astype(np.float64 if dt != "I64" else np.int64)
                                     .reshape(e["shape"]))
    return out


def load_weights(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        idx = json.load(f)
    w = {}
    for fn in sorted(set(idx["weight_map"].values())):
        w.update(read_safetensors(os.path.join(d, fn)))
    return w


TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                     num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                     hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=49407)
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, image_size=224, patch_size=32,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5)


def load_config(d):
    with open(os.path.join(d, "config.json")) as f:
        raw = json.load(f)
    tc = dict(TEXT_DEFAULTS)
    vc = dict(VISION_DEFAULTS)
    # CLIPConfig.__init__: text_config_dict (with defaults) overrides text_config
    if raw.get("text_config_dict") is not None:
        tc.update(raw["text_config_dict"])
    else:
        tc.update(raw.get("text_config") or {})
    if raw.get("vision_config_dict") is not None:
        vc.update(raw["vision_config_dict"])
    else:
        vc.update(raw.get("vision_config") or {})
    return tc, vc, raw.get("projection_dim", 512)


# ---------------------------------------------------------------------------------------------
# forward (modeling_clip.py)

def act(x, name):
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    raise ValueError(name)


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def encoder(x, W, prefix, cfg, causal):
    B, L, C = x.shape
    H = cfg["num_attention_heads"]
    E = C // H
    eps = cfg["layer_norm_eps"]
    mask = None
    if causal:  # _create_4d_causal_attention_mask: -inf above the diagonal
        mask = torch.full((L, L), float("-inf"), dtype=x.dtype).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = "%s.encoder.layers.%d." % (prefix, i)

        def lin(t, n):
            return torch.nn.functional.linear(t, W[p + n + ".weight"], W[p + n + ".bias"])

        res = x
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj") * E ** -0.5
        k = lin(h, "self_attn.k_proj")
        v = lin(h, "self_attn.v_proj")
        q, k, v = (t.view(B, L, H, E).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, L, C)
        x = res + lin(a, "self_attn.out_proj")
        res = x
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        h = lin(act(lin(h, "mlp.fc1"), cfg["hidden_act"]), "mlp.fc2")
        x = res + h
    return x


def image_features(W, vc, pixels):
    pixels = torch.as_tensor(pixels, dtype=torch.float64)
    B = pixels.shape[0]
    pe = torch.nn.functional.conv2d(pixels, W["vision_model.embeddings.patch_embedding.weight"],
                                    stride=vc["patch_size"])
    pe = pe.flatten(2).transpose(1, 2)
    cls = W["vision_model.embeddings.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, pe], dim=1) + W["vision_model.embeddings.position_embedding.weight"]
    eps = vc["layer_norm_eps"]
    x = layer_norm(x, W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"],
                   eps)
    x = encoder(x, W, "vision_model", vc, causal=False)
    pooled = layer_norm(x[:, 0, :], W["vision_model.post_layernorm.weight"],
                        W["vision_model.post_layernorm.bias"], eps)
    f = pooled @ W["visual_projection.weight"].T
    return f / f.norm(dim=-1, keepdim=True)


def text_features(W, tc, ids):
    ids = torch.tensor([ids], dtype=torch.int64)
    L = ids.shape[1]
    x = (W["text_model.embeddings.token_embedding.weight"][ids] +
         W["text_model.embeddings.position_embedding.weight"][:L])
    x = encoder(x, W, "text_model", tc, causal=True)
    x = layer_norm(x, W["text_model.final_layer_norm.weight"],
                   W["text_model.final_layer_norm.bias"], tc["layer_norm_eps"])
    if tc["eos_token_id"] == 2:
        pos = ids.argmax(dim=-1)
    else:
        pos = (ids == tc["eos_token_id"]).int().argmax(dim=-1)
    f = x[torch.arange(1), pos] @ W["text_projection.weight"].T
    return (f / f.norm(dim=-1, keepdim=True))[0]


# ---------------------------------------------------------------------------------------------
# preprocessing (CLIPImageProcessor with PIL)

def preprocess(path, d, image_size):
    from PIL import Image, ImageOps
    with open(os.path.join(d, "preprocessor_config.json")) as f:
        pc = json.load(f)
    size = pc.get("size", {"shortest_edge": 224})
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = pc.get("crop_size", {"height": 224, "width": 224})
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    if "shortest_edge" in size:
        s = size["shortest_edge"]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s, int(s * long / short)
        nh, nw = (new_long, new_short) if w <= h else (new_short, new_long)
    else:
        nh, nw = size["height"], size["width"]
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), resample=pc.get("resample", 3))
    a = np.array(im)  # (H, W, 3) uint8
    ch, cw = crop["height"], crop["width"]
    top, left = (a.shape[0] - ch) // 2, (a.shape[1] - cw) // 2
    assert top >= 0 and left >= 0
    a = a[top:top + ch, left:left + cw]
    a = (a.astype(np.float64) * pc.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(pc["image_mean"], dtype=np.float32)
    std = np.array(pc["image_std"], dtype=np.float32)
    a = (a - mean) / std
    assert a.shape == (image_size, image_size, 3)
    return a.transpose(2, 0, 1)


# ---------------------------------------------------------------------------------------------
# tokenizer (openai/CLIP simple_tokenizer.py without ftfy; the test texts need none)

def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def pre_split(text):
    """'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+ without the regex module."""
    def cat(c):
        k = unicodedata.category(c)
        return "L" if k[0] == "L" else "N" if k[0] == "N" else "S" if c.isspace() else "O"
    out, i = [], 0
    while i < len(text):
        c = text[i]
        hit = None
        for con in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(con, i):
                hit = con
                break
        if hit:
            out.append(hit)
            i += len(hit)
            continue
        k = cat(c)
        if k == "S":
            i += 1
            continue
        if k == "N":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(text) and cat(text[j]) == k:
            j += 1
        out.append(text[i:j])
        i = j
    return out


class Tokenizer:
    def __init__(self, d):
        with open(os.path.join(d, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(d, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")[1:49152 - 256 - 2 + 1]
        self.ranks = {tuple(m.split()): i for i, m in enumerate(lines) if m}
        self.b2u = bytes_to_unicode()

    def bpe(self, token):
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i)
                     for i, (a, b) in enumerate(zip(word, word[1:]))]
            best = min(pairs)[0]
            if best == 1 << 30:
                break
            pair = None
            for r, i in pairs:
                if r == best:
                    pair = (word[i], word[i + 1])
                    break
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        return word

    def encode(self, text, max_len=77):
        text = unicodedata.normalize("NFC", text)
        text = " ".join(text.split()).lower()
        ids = []
        for tok in pre_split(text):
            u = "".join(self.b2u[b] for b in tok.encode("utf-8"))
            ids += [self.vocab[p] for p in self.bpe(u)]
        ids = ids[:max_len - 2]
        return [49406] + ids + [49407]


# ---------------------------------------------------------------------------------------------

def rounded(t):
    return [float("%.9g" % v) for v in t.tolist()]


def main():
    photos = sorted(glob.glob(os.path.join(MODELS, "photos", "*")))
    for cfgpath in sorted(glob.glob(os.path.join(MODELS, "*", "config.json"))):
        d = os.path.dirname(cfgpath)
        tc, vc, proj = load_config(d)
        W = load_weights(d)
        S = vc["image_size"]
        ref = {"dim": proj, "image_size": S}
        px = np.fromfile(os.path.join(d, "pixels.f32"), "<f4").reshape(-1, 3, S, S)
        ref["pixels"] = {"file": "pixels.f32", "batch": px.shape[0],
                         "embeddings": [rounded(e) for e in image_features(W, vc, px)]}
        # token-id cases: random ids with the eos id placed at various positions
        rng = np.random.default_rng(123)
        V, P, eos = tc["vocab_size"], tc["max_position_embeddings"], tc["eos_token_id"]
        cases = []
        for n in (2, 3, 7, P):
            top = min(V, 49406) if eos != 2 else V
            ids = [int(i) for i in rng.integers(3, top - 1 if eos != 2 else top, size=n)]
            if eos != 2:
                ids = [i if i != eos else 5 for i in ids]
                ids[n - 1] = eos
                if n > 3:  # pad after the eos, as padding="max_length" does
                    ids[n // 2] = eos
                    ids[n // 2 + 1:] = [eos] * (n - n // 2 - 1)
            cases.append({"ids": ids, "embedding": rounded(text_features(W, tc, ids))})
        ref["token_cases"] = cases
        if os.path.exists(os.path.join(d, "vocab.json")):
            tok = Tokenizer(d)
            ref["text_cases"] = []
            for t in TEXTS:
                ids = tok.encode(t, P)
                ref["text_cases"].append({"text": t, "ids": ids,
                                          "embedding": rounded(text_features(W, tc, ids))})
        files = []
        for ph in photos:
            x = preprocess(ph, d, S)[None]
            files.append({"file": "../photos/" + os.path.basename(ph),
                          "embedding": rounded(image_features(W, vc, x)[0])})
        ref["image_files"] = files
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
            f.write("\n")
        print("wrote", os.path.join(d, "ref.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
