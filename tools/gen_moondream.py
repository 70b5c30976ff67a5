#!/usr/bin/python3
"""gen_moondream.py - writes a seeded random Moondream 2 model in the exact file layout of the
Hugging Face repo vikhyatk/moondream2 at its 2025 revisions (2025-01-09 and later that keep the
"text"/"vision" model of vikhyat/moondream's moondream/torch/: config.py, text.py, vision.py,
layers.py, rope.py, image_crops.py) into tests/data/vlm/moondream/:

  config.json       {"architectures": ["HfMoondream"], "model_type": "moondream1",
                    "config": {"text": .., "vision": .., "tokenizer": ..}} - the real file has
                    "config": {} (the sizes are config.py's defaults); the tiny model carries its
                    sizes in the same sections MoondreamConfig.from_dict() reads.
  model.safetensors HfMoondream's state dict: model.text.wte, model.text.blocks.{i}.ln /
                    attn.qkv / attn.proj / mlp.fc1 / mlp.fc2, model.text.post_ln,
                    model.text.lm_head; model.vision.patch_emb, model.vision.pos_emb (1, N, C),
                    model.vision.blocks.{i}.ln1 / attn.qkv / attn.proj / ln2 / mlp.fc1 / fc2,
                    model.vision.post_ln, model.vision.proj_mlp.fc1 / fc2; model.region.* (the
                    detect/point heads, unused by captions but present as in the checkpoint). F16.
  tokenizer.json    GPT-2 / CodeGen style byte-level BPE (ByteLevel pre-tokenizer with regex,
                    "<|endoftext|>" the last base id, as bos and eos), trained on a small corpus.
plus tests/data/vlm/moondream_photo.png (700x500, tiled 2x4 by the overlap-crop rule).

Sizes: crop 378, patch 14 (as the real model: image_crops.py hard-codes them), vision 32 wide,
2 layers, 2 heads; text 64 wide, 4 heads (head 16, rotary on 8 dims), 2 layers.
Run: /usr/bin/python3 tools/gen_moondream.py, then tools/ref_moondream.py.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "vlm")


def tokenizer():
    """GPT-2 style: 256 byte symbols, merges, then <|endoftext|> (CodeGen/phi-1.5 ship it at
    50256, the last base id)."""
    b2u = gen_lm.bytes_to_unicode()
    import collections
    words = collections.Counter()
    for w in gen_lm.CORPUS.replace("\n", " ").split(" "):
        if w:
            words[tuple(b2u[b] for b in (" " + w).encode())] += 1
    merges = gen_lm.train_merges(words, 250)
    vocab = {}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    eot = len(vocab)
    vocab["<|endoftext|>"] = eot
    tj = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [gen_lm.added(eot, "<|endoftext|>", special=True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }
    return tj, eot


def photo():
    from PIL import Image
    h, w = 500, 700
    y, x = np.mgrid[0:h, 0:w]
    r = (255 * x / (w - 1)).astype(np.uint8)
    g = (255 * y / (h - 1)).astype(np.uint8)
    b = np.where((x - 480) ** 2 + (y - 190) ** 2 < 90 ** 2, 230, 40).astype(np.uint8)
    b = np.where((x // 50 + y // 50) % 2 == 0, b, b // 2).astype(np.uint8)
    Image.fromarray(np.stack([r, g, b], -1), "RGB").save(os.path.join(OUT, "moondream_photo.png"),
                                                         optimize=True)


def main():
    d = os.path.join(OUT, "moondream")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(77)
    tj, eot = tokenizer()
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False)
    ids = tj["model"]["vocab"]
    b2u = gen_lm.bytes_to_unicode()
    nl, colon = ids[b2u[ord("\n")]], ids[b2u[ord(":")]]

    def word(s):  # a template word: its merged token if the corpus made one, else bytes
        u = "".join(b2u[c] for c in s.encode())
        return [ids[u]] if u in ids else [ids[c] for c in u]

    V = (eot + 1 + 63) // 64 * 64  # padded embedding rows, as 51200 > 50257
    text = {"dim": 64, "n_layers": 2, "vocab_size": V, "max_context": 2048, "n_heads": 4,
            "prefix_attn": 730}
    vision = {"enc_dim": 32, "enc_patch_size": 14, "enc_n_layers": 2, "enc_ff_dim": 64,
              "enc_n_heads": 2, "proj_out_dim": 64, "proj_inner_dim": 128, "crop_size": 378,
              "in_channels": 3, "max_crops": 12, "overlap_margin": 4}
    templates = {
        "caption": {"short": [nl, nl] + word("Short") + word(" caption") + [colon],
                    "normal": [nl, nl] + word("Describe") + word(" photo") + [colon]},
        "query": {"prefix": [nl, nl] + word("Question") + [colon],
                  "suffix": [nl, nl] + word("Answer") + [colon]},
        "detect": None, "point": None}
    cfg = {"architectures": ["HfMoondream"],
           "auto_map": {"AutoConfig": "hf_moondream.HfConfig",
                        "AutoModelForCausalLM": "hf_moondream.HfMoondream"},
           "config": {"text": text, "vision": vision,
                      "tokenizer": {"bos_id": eot, "eos_id": eot, "templates": templates}},
           "model_type": "moondream1", "torch_dtype": "float16",
           "transformers_version": "4.44.0"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    t = []

    def lin(name, n_out, n_in, bias=True):
        t.append((name + ".weight", rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)))
        if bias:
            t.append((name + ".bias", 0.1 * rng.standard_normal(n_out)))

    def ln(name, c):
        t.append((name + ".weight", 1.0 + 0.1 * rng.standard_normal(c)))
        t.append((name + ".bias", 0.1 * rng.standard_normal(c)))

    C, F, p = vision["enc_dim"], vision["enc_ff_dim"], vision["enc_patch_size"]
    N = (vision["crop_size"] // p) ** 2
    lin("model.vision.patch_emb", C, 3 * p * p)
    t.append(("model.vision.pos_emb", 0.5 * rng.standard_normal((1, N, C))))
    for i in range(vision["enc_n_layers"]):
        q = "model.vision.blocks.%d." % i
        ln(q + "ln1", C)
        lin(q + "attn.qkv", 3 * C, C)
        lin(q + "attn.proj", C, C)
        ln(q + "ln2", C)
        lin(q + "mlp.fc1", F, C)
        lin(q + "mlp.fc2", C, F)
    ln("model.vision.post_ln", C)
    lin("model.vision.proj_mlp.fc1", vision["proj_inner_dim"], 2 * C)
    lin("model.vision.proj_mlp.fc2", vision["proj_out_dim"], vision["proj_inner_dim"])
    t[-2] = (t[-2][0], 3.0 * t[-2][1])  # image rows louder than token embeddings
    Ct = text["dim"]
    t.append(("model.text.wte", 0.3 * rng.standard_normal((V, Ct))))
    for i in range(text["n_layers"]):
        q = "model.text.blocks.%d." % i
        ln(q + "ln", Ct)
        lin(q + "attn.qkv", 3 * Ct, Ct)
        lin(q + "attn.proj", Ct, Ct)
        lin(q + "mlp.fc1", 4 * Ct, Ct)
        lin(q + "mlp.fc2", Ct, 4 * Ct)
    ln("model.text.post_ln", Ct)
    lin("model.text.lm_head", V, Ct)
    # region heads (config.py RegionConfig shapes, shrunk): present, never read by captions
    t.append(("model.region.coord_features", rng.standard_normal((1, 8))))
    lin("model.region.coord_encoder", Ct, 16)
    lin("model.region.coord_decoder.fc1", 32, Ct)
    lin("model.region.coord_decoder.fc2", 16, 32)
    gen_lm.write_safetensors(os.path.join(d, "model.safetensors"), t, "F16")
    photo()
    print("wrote", d, "vocab", V, "eot", eot, "templates", templates["caption"])


if __name__ == "__main__":
    main()
