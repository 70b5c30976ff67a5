#!/usr/bin/python3
"""gen_clip.py - writes seeded random CLIP models in the exact Hugging Face CLIPModel layout
(config.json, model.safetensors or a sharded index, preprocessor_config.json, tokenizer files)
into tests/data/models/<name>/, plus the fixed inputs the tests use (pixels.f32, photos/).

Run with Debian's python3 (numpy, PIL): /usr/bin/python3 tools/gen_clip.py
Then tools/ref_clip.py computes the expected outputs. Both are deterministic (seeded).

The safetensors writer follows the format spec (huggingface/safetensors README): u64 LE header
length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {"format": "pt"}}
padded with spaces to a multiple of 8, then the raw little-endian data.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "models")
TOKDIR = os.path.join(ROOT, "tests", "data", "tokenizer", "clip")
PHOTO_SRC = os.path.join(ROOT, "..", "shared", "testdata", "photos")

# (a) tiny B/32-like, quick_gelu, F32, real vocab (tokenizer tests)
# (b) exact gelu, odd head count (3), image 40 with patch 16 (conv drops the remainder),
#     legacy int size/crop_size, layer_norm_eps 1e-6, shuffled tensor order
# (c) F16 weights, real vocab
# (d) BF16 weights
# (e) sharded (model.safetensors.index.json, 2 shards), shuffled tensor order
# (f) legacy: text_config_dict/vision_config_dict override text_config/vision_config,
#     eos_token_id 2 (argmax pooling), int64 position_ids present, defaults for missing keys
# (g) 224 input (openai-like preprocessing numbers) for the photo path
MODELS = [
    dict(name="tiny_b32", seed=1, dtype="F32", vocab=49408, tok=True,
         text=dict(hidden=16, inter=64, layers=2, heads=2, act="quick_gelu", pos=77),
         vision=dict(hidden=32, inter=128, layers=2, heads=4, act="quick_gelu", image=64,
                     patch=16), proj=24),
    dict(name="gelu_odd", seed=2, dtype="F32", vocab=1000, eos=999, shuffle=True,
         legacy_pre=True, eps=1e-6,
         text=dict(hidden=24, inter=48, layers=2, heads=3, act="gelu", pos=16),
         vision=dict(hidden=36, inter=72, layers=2, heads=3, act="gelu", image=40, patch=16),
         proj=20),
    dict(name="f16", seed=3, dtype="F16", vocab=49408, tok=True,
         text=dict(hidden=16, inter=32, layers=2, heads=4, act="quick_gelu", pos=77),
         vision=dict(hidden=24, inter=48, layers=2, heads=2, act="quick_gelu", image=48,
                     patch=12), proj=16),
    dict(name="bf16", seed=4, dtype="BF16", vocab=1000, eos=999,
         text=dict(hidden=16, inter=32, layers=2, heads=2, act="gelu", pos=20),
         vision=dict(hidden=16, inter=32, layers=3, heads=2, act="quick_gelu", image=32,
                     patch=8), proj=12),
    dict(name="sharded", seed=5, dtype="F32", vocab=1000, eos=999, shards=2, shuffle=True,
         text=dict(hidden=16, inter=32, layers=2, heads=2, act="quick_gelu", pos=16),
         vision=dict(hidden=32, inter=64, layers=2, heads=4, act="quick_gelu", image=64,
                     patch=32), proj=16),
    dict(name="legacy", seed=6, dtype="F32", vocab=1000, eos=2, legacy=True,
         position_ids=True, legacy_pre=True,
         text=dict(hidden=16, inter=32, layers=1, heads=2, act=None, pos=16),
         vision=dict(hidden=16, inter=32, layers=1, heads=2, act=None, image=32, patch=16),
         proj=8),
    dict(name="b32_224", seed=7, dtype="F16", vocab=1000, eos=999,
         text=dict(hidden=16, inter=32, layers=1, heads=2, act="quick_gelu", pos=16),
         vision=dict(hidden=32, inter=64, layers=2, heads=2, act="quick_gelu", image=224,
                     patch=32), proj=16),
]


def tower_config(t, kind, spec):
    c = {
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_size": t["hidden"],
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": t["inter"],
        "model_type": "clip_%s_model" % kind,
        "num_attention_heads": t["heads"],
        "num_hidden_layers": t["layers"],
        "projection_dim": spec["proj"],
    }
    if t["act"] is not None:
        c["hidden_act"] = t["act"]
    if "eps" in spec:
        c["layer_norm_eps"] = spec["eps"]
    elif not spec.get("legacy"):
        c["layer_norm_eps"] = 1e-05
    if kind == "text":
        c.update(vocab_size=spec["vocab"], max_position_embeddings=t["pos"],
                 bos_token_id=0 if spec.get("eos") == 2 else 49406,
                 eos_token_id=spec.get("eos", 49407), pad_token_id=1)
    else:
        c.update(image_size=t["image"], patch_size=t["patch"], num_channels=3)
    return c


def make_config(spec):
    tc = tower_config(spec["text"], "text", spec)
    vc = tower_config(spec["vision"], "vision", spec)
    cfg = {
        "_name_or_path": "shoebox-tests/clip-%s" % spec["name"].replace("_", "-"),
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": spec["proj"],
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[spec["dtype"]],
        "transformers_version": "4.40.0",
    }
    if spec.get("legacy"):
        # transformers < 4.23 wrote *_config_dict; CLIPConfig lets them win over *_config,
        # so put nonsense in the latter to prove we read the former.
        cfg["text_config_dict"] = tc
        cfg["vision_config_dict"] = vc
        cfg["text_config"] = {"hidden_size": 999, "num_hidden_layers": 77}
        cfg["vision_config"] = {"hidden_size": 999, "patch_size": 3}
    else:
        cfg["text_config"] = tc
        cfg["vision_config"] = vc
    return cfg


def make_preprocessor(spec):
    s = spec["vision"]["image"]
    if spec.get("legacy_pre"):  # CLIPFeatureExtractor era: ints
        return {"crop_size": s, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": s}
    return {"crop_size": {"height": s, "width": s}, "do_center_crop": True,
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": s}}


def make_weights(spec, rng):
    """The CLIPModel state dict, in the order PyTorch's state_dict() lists it."""
    w = {}
    proj = spec["proj"]

    def lin(name, n_out, n_in, bias=True):
        w[name + ".weight"] = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        if bias:
            w[name + ".bias"] = 0.1 * rng.standard_normal(n_out)

    def ln(name, c):
        w[name + ".weight"] = 1.0 + 0.1 * rng.standard_normal(c)
        w[name + ".bias"] = 0.1 * rng.standard_normal(c)

    def layers(prefix, t):
        c, f = t["hidden"], t["inter"]
        for i in range(t["layers"]):
            p = "%s.encoder.layers.%d" % (prefix, i)
            for part in ("k_proj", "v_proj", "q_proj", "out_proj"):
                lin("%s.self_attn.%s" % (p, part), c, c)
            ln(p + ".layer_norm1", c)
            lin(p + ".mlp.fc1", f, c)
            lin(p + ".mlp.fc2", c, f)
            ln(p + ".layer_norm2", c)

    t, v = spec["text"], spec["vision"]
    c = t["hidden"]
    w["text_model.embeddings.token_embedding.weight"] = 0.5 * rng.standard_normal((spec["vocab"], c))
    w["text_model.embeddings.position_embedding.weight"] = 0.5 * rng.standard_normal((t["pos"], c))
    if spec.get("position_ids"):
        w["text_model.embeddings.position_ids"] = np.arange(t["pos"], dtype=np.int64)[None, :]
    layers("text_model", t)
    ln("text_model.final_layer_norm", c)
    c, p = v["hidden"], v["patch"]
    g = v["image"] // p
    w["vision_model.embeddings.class_embedding"] = 0.5 * rng.standard_normal(c)
    w["vision_model.embeddings.patch_embedding.weight"] = (
        rng.standard_normal((c, 3, p, p)) / np.sqrt(3 * p * p))
    w["vision_model.embeddings.position_embedding.weight"] = 0.5 * rng.standard_normal((g * g + 1, c))
    if spec.get("position_ids"):
        w["vision_model.embeddings.position_ids"] = np.arange(g * g + 1, dtype=np.int64)[None, :]
    ln("vision_model.pre_layrnorm", c)
    layers("vision_model", v)
    ln("vision_model.post_layernorm", c)
    lin("visual_projection", proj, c, bias=False)
    lin("text_projection", proj, t["hidden"], bias=False)
    w["logit_scale"] = np.array(2.6592)
    return w


def to_bytes(a, dtype):
    if a.dtype == np.int64:
        return "I64", a.astype("<i8").tobytes()
    if dtype == "F32":
        return "F32", a.astype("<f4").tobytes()
    if dtype == "F16":
        return "F16", a.astype("<f2").tobytes()
    # BF16: round-to-nearest-even of the f32 bits, as torch does
    u = a.astype("<f4").view("<u4").astype(np.int64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    return "BF16", u.tobytes()


def write_safetensors(path, tensors, dtype, order):
    header, blobs, off = {}, [], 0
    for name in order:
        dt, b = to_bytes(tensors[name], dtype)
        header[name] = {"dtype": dt, "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def write_model(spec):
    d = os.path.join(OUT, spec["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    rng = np.random.default_rng(spec["seed"])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(make_config(spec), f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(make_preprocessor(spec), f, indent=2, sort_keys=True)
        f.write("\n")
    w = make_weights(spec, rng)
    names = list(w)
    if spec.get("shuffle"):
        rng.shuffle(names)
    shards = spec.get("shards", 1)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), w, spec["dtype"], names)
    else:
        per = (len(names) + shards - 1) // shards
        weight_map = {}
        for s in range(shards):
            fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            part = names[s * per:(s + 1) * per]
            write_safetensors(os.path.join(d, fn), w, spec["dtype"], part)
            for n in part:
                weight_map[n] = fn
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
    if spec.get("tok"):
        # the real CLIP vocabulary, shared with the tokenizer tests (symlinks keep it once)
        for fn in ("vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json"):
            if os.path.exists(os.path.join(TOKDIR, fn)):
                os.symlink(os.path.join("..", "..", "tokenizer", "clip", fn),
                           os.path.join(d, fn))
    # fixed pixel inputs: 3 images, 3 x S x S, roughly the range of normalised pixels
    s = spec["vision"]["image"]
    px = rng.standard_normal((1 if s > 100 else 3, 3, s, s)).astype("<f4")
    px.tofile(os.path.join(d, "pixels.f32"))


def write_photos():
    """Small photos: cat_chelsea (CC0) with each EXIF orientation 1..8, plus a few others."""
    from PIL import Image
    d = os.path.join(OUT, "photos")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cat = Image.open(os.path.join(PHOTO_SRC, "cat_chelsea.png")).convert("RGB")
    cat.thumbnail((300, 300), Image.LANCZOS)
    # store the pixels so that applying orientation o gives the upright cat back
    inverse = {1: [], 2: [Image.FLIP_LEFT_RIGHT], 3: [Image.ROTATE_180],
               4: [Image.FLIP_TOP_BOTTOM], 5: [Image.TRANSPOSE], 6: [Image.ROTATE_90],
               7: [Image.TRANSVERSE], 8: [Image.ROTATE_270]}
    for o in range(1, 9):
        im = cat
        for op in inverse[o]:
            im = im.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = o
        im.save(os.path.join(d, "cat_orientation_%d.jpg" % o), quality=90, exif=exif.tobytes())
    others = [("coffee_cup.png", "coffee_cup.jpg", (257, 193)),
              ("kodak_kodim05_gray256.png", "kodim05_gray.png", None),
              ("zebra_grassland.jpg", "zebra_tall.jpg", (120, 333)),
              # large enough that a 224 model decodes it with JPEG DCT scaling (1/2)
              ("kodak_kodim03_hats.png", "hats_768.jpg", None)]
    for src, dst, size in others:
        im = Image.open(os.path.join(PHOTO_SRC, src))
        if size:
            im = im.convert("RGB").resize(size, Image.LANCZOS)
        elif dst.endswith(".jpg"):
            im = im.convert("RGB")
        im.save(os.path.join(d, dst), quality=90)


# A ViT-B/32-shaped vision tower (random weights, tiny text tower) for bench/: not committed.
BENCH = dict(name="bench_b32", seed=8, dtype="F32", vocab=1000, eos=999,
             text=dict(hidden=16, inter=32, layers=1, heads=2, act="quick_gelu", pos=16),
             vision=dict(hidden=768, inter=3072, layers=12, heads=12, act="quick_gelu",
                         image=224, patch=32), proj=512)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        global OUT
        OUT = sys.argv[2]
        write_model(BENCH)
        return 0
    for spec in MODELS:
        write_model(spec)
    write_photos()
    return 0


if __name__ == "__main__":
    sys.exit(main())
