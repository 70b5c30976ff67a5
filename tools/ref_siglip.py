#!/usr/bin/python3
"""ref_siglip.py - expected outputs for the SigLIP fixtures of tools/gen_siglip.py, computed
independently of shoebox's C code: the forward passes are written from transformers'
modeling_siglip.py (SiglipVisionEmbeddings, SiglipEncoderLayer, SiglipMultiheadAttentionPoolingHead
via torch.nn.functional.multi_head_attention_forward, SiglipTextTransformer) in torch float64;
tokens come from the sentencepiece Python package (Debian's python3-sentencepiece) with
transformers' SiglipTokenizer pipeline (tokenization_siglip.py) re-created around it, or for
SigLIP 2 (tokenizer.json) from tools/ref_gemma_tok.py, lower-cased, <eos> kept on truncation,
padded with <pad> (Siglip2Processor: padding="max_length", max_length=64); photo
preprocessing is SiglipImageProcessor's (PIL bicubic resize to a square, rescale, normalise).

Writes tests/data/siglip/<name>/ref.json and tests/data/siglip/spiece/cases.json.
Run: /usr/bin/python3 tools/ref_siglip.py
"""
import glob
import json
import os
import re
import string
import sys

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_clip import load_weights, rounded  # noqa: E402  (safetensors reader only)
from ref_gemma_tok import GemmaTok  # noqa: E402  (SigLIP 2's tokenizer.json)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGDIR = os.path.join(ROOT, "tests", "data", "siglip")
PHOTOS = os.path.join(ROOT, "tests", "data", "models", "photos")

TEXTS = [
    "a photo of a cat",
    "A  Photo of a CAT!",
    "",
    "   leading and trailing   ",
    "sunset over the mountains, 2019",
    "my grandmother's kitchen",
    "naïve café crème Straße ÅNGSTRÖM",
    "ligatures ﬁ ﬂ and circled ① ⑵ full-width ＡＢＣ",
    "tabs\tand\nnewlines\u3000ideographic space",
    "unknown 漢字 and an emoji 🐱🐶",
    "punct: hello, world... (test) — dash [x] {y} <z>",
    "▁under▁score▁",
    "!!! ??? ...",
    "the quick brown fox jumps over the lazy dog " * 12,
]


def act(x, name):
    if name == "gelu":
        return Fn.gelu(x)
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return Fn.gelu(x, approximate="tanh")
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(name)


def load_config(d):
    with open(os.path.join(d, "config.json")) as f:
        raw = json.load(f)
    tdef = dict(vocab_size=32000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=64,
                hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, pad_token_id=1)
    vdef = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, image_size=224, patch_size=16,
                hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    tdef.update(raw.get("text_config", {}))
    vdef.update(raw.get("vision_config", {}))
    return tdef, vdef


def encoder(x, W, prefix, cfg):
    """SiglipEncoder: pre-LN layers, bidirectional attention, no mask. x (B, L, C)."""
    B, L, C = x.shape
    H = cfg["num_attention_heads"]
    E = C // H
    eps = cfg["layer_norm_eps"]
    for i in range(cfg["num_hidden_layers"]):
        p = "%s.encoder.layers.%d." % (prefix, i)

        def lin(t, n):
            return t @ W[p + n + ".weight"].T + W[p + n + ".bias"]

        h = Fn.layer_norm(x, (C,), W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj").view(B, L, H, E).transpose(1, 2)
        k = lin(h, "self_attn.k_proj").view(B, L, H, E).transpose(1, 2)
        v = lin(h, "self_attn.v_proj").view(B, L, H, E).transpose(1, 2)
        a = torch.softmax((q @ k.transpose(-1, -2)) * E ** -0.5, dim=-1) @ v
        x = x + lin(a.transpose(1, 2).reshape(B, L, C), "self_attn.out_proj")
        h = Fn.layer_norm(x, (C,), W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        x = x + lin(act(lin(h, "mlp.fc1"), cfg["hidden_act"]), "mlp.fc2")
    return x


def image_features(W, vc, pixels):
    x = torch.from_numpy(np.asarray(pixels, np.float64))
    C, p = vc["hidden_size"], vc["patch_size"]
    e = Fn.conv2d(x, W["vision_model.embeddings.patch_embedding.weight"],
                  W["vision_model.embeddings.patch_embedding.bias"], stride=p)  # "valid"
    e = e.flatten(2).transpose(1, 2)  # (B, N, C)
    e = e + W["vision_model.embeddings.position_embedding.weight"][None]
    h = encoder(e, W, "vision_model", vc)
    h = Fn.layer_norm(h, (C,), W["vision_model.post_layernorm.weight"],
                      W["vision_model.post_layernorm.bias"], vc["layer_norm_eps"])
    # SiglipMultiheadAttentionPoolingHead
    B = h.shape[0]
    hp = "vision_model.head."
    probe = W[hp + "probe"].repeat(B, 1, 1)
    o, _ = Fn.multi_head_attention_forward(
        probe.transpose(0, 1), h.transpose(0, 1), h.transpose(0, 1), C,
        vc["num_attention_heads"], W[hp + "attention.in_proj_weight"],
        W[hp + "attention.in_proj_bias"], None, None, False, 0.0,
        W[hp + "attention.out_proj.weight"], W[hp + "attention.out_proj.bias"],
        training=False, need_weights=False)
    o = o.transpose(0, 1)  # (B, 1, C)
    r = o
    o = Fn.layer_norm(o, (C,), W[hp + "layernorm.weight"], W[hp + "layernorm.bias"],
                      vc["layer_norm_eps"])
    o = o @ W[hp + "mlp.fc1.weight"].T + W[hp + "mlp.fc1.bias"]
    o = act(o, vc["hidden_act"]) @ W[hp + "mlp.fc2.weight"].T + W[hp + "mlp.fc2.bias"]
    pooled = (r + o)[:, 0]
    return (pooled / pooled.norm(dim=-1, keepdim=True)).numpy()


def text_features(W, tc, ids, pad):
    P = tc["max_position_embeddings"]
    ids = list(ids) + [pad] * (P - len(ids))  # padding="max_length"
    t = torch.tensor(ids)
    x = W["text_model.embeddings.token_embedding.weight"][t]
    x = x + W["text_model.embeddings.position_embedding.weight"][:P]
    x = encoder(x[None], W, "text_model", tc)
    C = tc["hidden_size"]
    x = Fn.layer_norm(x, (C,), W["text_model.final_layer_norm.weight"],
                      W["text_model.final_layer_norm.bias"], tc["layer_norm_eps"])
    pooled = x[:, -1, :] @ W["text_model.head.weight"].T + W["text_model.head.bias"]
    return (pooled / pooled.norm(dim=-1, keepdim=True))[0].numpy()


# ---------------------------------------------------------------------------------------------
# SiglipTokenizer around sentencepiece

def without_dummy_prefix(model_bytes):
    """SiglipTokenizer.get_spm_processor(): normalizer_spec.add_dummy_prefix = False, done here
    by appending field 3 (varint 0) to ModelProto field 3 (the last value of a field wins)."""
    def varint(b, i):
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if not c & 0x80:
                return v, i

    def enc(v):
        out = bytearray()
        while True:
            c = v & 0x7F
            v >>= 7
            out.append(c | (0x80 if v else 0))
            if not v:
                return bytes(out)

    out, i = bytearray(), 0
    while i < len(model_bytes):
        start = i
        key, i = varint(model_bytes, i)
        wt = key & 7
        if wt == 0:
            _, i = varint(model_bytes, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, j = varint(model_bytes, i)
            body = model_bytes[j:j + n]
            i = j + n
            if key >> 3 == 3:
                body = body + bytes([0x18, 0x00])
                out += enc(key) + enc(len(body)) + body
                continue
        out += model_bytes[start:i]
    return bytes(out)


class SiglipTok:
    def __init__(self, path, lower=True, max_len=64):
        with open(path, "rb") as f:
            raw = f.read()
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(without_dummy_prefix(raw))
        self.plain = spm.SentencePieceProcessor()
        self.plain.LoadFromSerializedProto(raw)
        self.lower, self.max_len = lower, max_len
        self.eos = self.sp.piece_to_id("</s>")

    def encode(self, text):
        text = "\u2581" + text.replace("\u2581", " ")  # SiglipTokenizer.tokenize
        if self.lower:  # PreTrainedTokenizer.tokenize with do_lower_case
            text = text.lower()
        # _tokenize: canonicalize_text
        text = text.translate(str.maketrans("", "", string.punctuation))
        text = re.sub(r"\s+", " ", text).strip()
        unk_len = len(self.sp.encode("<unk>"))
        toks = self.sp.encode("<unk>" + text, out_type=str)
        toks = toks[unk_len:] if len(toks) >= unk_len else toks
        ids = [self.sp.piece_to_id(t) for t in toks]
        return ids[:self.max_len - 1] + [self.eos]  # truncation=True, then </s>


def preprocess(path, d, S):
    from PIL import Image, ImageOps
    with open(os.path.join(d, "preprocessor_config.json")) as f:
        pc = json.load(f)
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    h, w = pc["size"]["height"], pc["size"]["width"]
    if im.size != (w, h):
        im = im.resize((w, h), resample=pc.get("resample", 3))
    a = np.array(im).astype(np.float64) * pc["rescale_factor"]
    a = a.astype(np.float32)
    a = (a - np.array(pc["image_mean"], np.float32)) / np.array(pc["image_std"], np.float32)
    return a.transpose(2, 0, 1)


def spiece_cases():
    cases = {}
    for fn in ("spiece.model", "spiece_bytes.model"):
        path = os.path.join(SIGDIR, "spiece", fn)
        tok = SiglipTok(path)
        plain = []
        for t in TEXTS:  # raw SentencePieceProcessor.encode, the model's own normalizer
            plain.append({"text": t, "ids": tok.plain.encode(t)})
        sig = [{"text": t, "ids": tok.encode(t)} for t in TEXTS]
        cases[fn] = {"size": tok.sp.get_piece_size(), "unk": tok.sp.unk_id(),
                     "eos": tok.sp.eos_id(), "pad": tok.sp.pad_id(), "plain": plain,
                     "siglip": sig}
    with open(os.path.join(SIGDIR, "spiece", "cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.join(SIGDIR, "spiece", "cases.json"))


def main():
    spiece_cases()
    photos = sorted(glob.glob(os.path.join(PHOTOS, "*")))[8:]  # the non-orientation photos
    for cfgpath in sorted(glob.glob(os.path.join(SIGDIR, "*", "config.json"))):
        d = os.path.dirname(cfgpath)
        tc, vc = load_config(d)
        W = load_weights(d)
        S = vc["image_size"]
        ls, lb = float(W["logit_scale"].exp()), float(W["logit_bias"])
        ref = {"dim": vc["hidden_size"], "image_size": S, "logit_scale": ls, "logit_bias": lb}
        px = np.fromfile(os.path.join(d, "pixels.f32"), "<f4").reshape(-1, 3, S, S)
        img = image_features(W, vc, px)
        ref["pixels"] = {"file": "pixels.f32", "batch": px.shape[0],
                         "embeddings": [rounded(e) for e in img]}
        rng = np.random.default_rng(321)
        V, P, pad = tc["vocab_size"], tc["max_position_embeddings"], tc["pad_token_id"]
        has_tok = os.path.exists(os.path.join(d, "spiece.model"))
        gemma = None
        if has_tok:
            pad = SiglipTok(os.path.join(d, "spiece.model")).sp.piece_to_id("</s>")
        elif os.path.exists(os.path.join(d, "tokenizer.json")):
            # SigLIP 2: Gemma tokenizer with add_eos_token, lower-cased as Siglip2Tokenizer
            # (and big_vision's training) does; padding="max_length" with <pad>
            gemma = GemmaTok(d, lower=True, max_len=P)
            pad = gemma.pad
        cases = []
        for n in (1, 2, 7, P):
            ids = [int(i) for i in rng.integers(0, V, size=n)]
            cases.append({"ids": ids, "embedding": rounded(text_features(W, tc, ids, pad))})
        ref["token_cases"] = cases
        if has_tok or gemma:
            tok = SiglipTok(os.path.join(d, "spiece.model"), max_len=P) if has_tok else None
            ref["text_cases"] = []
            for t in TEXTS:
                ids = tok.encode(t) if tok else gemma.siglip2(t)
                e = text_features(W, tc, ids, pad)
                ref["text_cases"].append({"text": t, "ids": ids, "embedding": rounded(e),
                                          "probability": [float(1 / (1 + np.exp(
                                              -(float(e @ img[k]) * ls + lb))))
                                              for k in range(len(img))]})
        ref["image_files"] = [{"file": "../../models/photos/" + os.path.basename(ph),
                               "embedding": rounded(image_features(
                                   W, vc, preprocess(ph, d, S)[None])[0])} for ph in photos]
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"), ensure_ascii=False)
            f.write("\n")
        print("wrote", os.path.join(d, "ref.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
