#!/usr/bin/python3
"""gen_siglip.py - writes seeded random SigLIP models in the exact Hugging Face SiglipModel
layout (config.json with model_type "siglip", model.safetensors, preprocessor_config.json as
SiglipImageProcessor saves it, spiece.model + tokenizer_config.json as SiglipTokenizer saves
them) into tests/data/siglip/<name>/, the fixed pixel inputs (pixels.f32), and the SentencePiece
fixtures tests/data/siglip/spiece/{spiece.model,spiece_bytes.model} (unigram, vocab 1000 / 400,
trained with Debian's spm_train on texts under /usr/share/common-licenses; pad 0, eos 1, unk 2
as T5 / SigLIP number them; the second with byte_fallback).

Run with Debian's python3 (numpy) and spm_train (apt-get install sentencepiece):
  /usr/bin/python3 tools/gen_gemma_tok.py && /usr/bin/python3 tools/gen_siglip.py [--retrain]
then tools/ref_siglip.py computes the expected outputs. The models are deterministic (seeded);
the spiece fixtures are only retrained with --retrain (they are committed).
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_clip import write_safetensors  # noqa: E402  (same writer as the CLIP fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "siglip")
SPDIR = os.path.join(OUT, "spiece")

# (a) tiny, F32, gelu_pytorch_tanh, eps 1e-6, 64 text positions, spiece tokenizer
# (b) odd heads (3), exact gelu, image 40 with patch 16 (the conv drops the remainder), F16,
#     projection_size left to its default, shuffled tensor order
# (c) BF16 weights, spiece tokenizer, 3 vision layers
# (d) SigLIP 2 fixed resolution (google/siglip2-base-patch16-224 layout: model_type "siglip",
#     SiglipModel, Gemma tokenizer.json from tools/gen_gemma_tok.py, pad 0 / eos 1 / bos 2)
MODELS = [
    dict(name="tiny", seed=11, dtype="F32", vocab=1000, tok="spiece.model",
         text=dict(hidden=32, inter=64, layers=2, heads=2, act="gelu_pytorch_tanh", pos=64),
         vision=dict(hidden=32, inter=96, layers=2, heads=4, act="gelu_pytorch_tanh", image=32,
                     patch=8)),
    dict(name="odd_f16", seed=12, dtype="F16", vocab=1000, shuffle=True, eps=1e-5,
         text=dict(hidden=36, inter=48, layers=2, heads=3, act="gelu", pos=16),
         vision=dict(hidden=36, inter=72, layers=2, heads=3, act="gelu", image=40, patch=16)),
    dict(name="bf16", seed=13, dtype="BF16", vocab=1000, tok="spiece.model",
         text=dict(hidden=16, inter=32, layers=2, heads=2, act="gelu_pytorch_tanh", pos=64),
         vision=dict(hidden=16, inter=32, layers=3, heads=2, act="gelu_pytorch_tanh", image=32,
                     patch=16)),
    dict(name="siglip2", seed=14, dtype="F32", vocab="gemma", tok="gemma",
         text=dict(hidden=32, inter=64, layers=2, heads=4, act="gelu_pytorch_tanh", pos=64),
         vision=dict(hidden=32, inter=64, layers=2, heads=2, act="gelu_pytorch_tanh", image=32,
                     patch=16)),
]
GEMMA_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def gemma_vocab_size():
    with open(os.path.join(OUT, "gemma_tok", "tokenizer.json"), encoding="utf-8") as f:
        return len(json.load(f)["model"]["vocab"])


def train_spiece():
    os.makedirs(SPDIR, exist_ok=True)
    corpus = os.path.join(SPDIR, "corpus.txt")
    lic = "/usr/share/common-licenses"
    with open(corpus, "w", encoding="utf-8") as f:
        for fn in sorted(os.listdir(lic)):
            p = os.path.join(lic, fn)
            if os.path.isfile(p):
                with open(p, encoding="utf-8", errors="replace") as g:
                    f.write(g.read())
        f.write("a photo of a cat\na photo of a dog\nnaïve café Straße ÅNGSTRÖM\n" * 20)
    common = ["--input=" + corpus, "--model_type=unigram", "--pad_id=0", "--eos_id=1",
              "--unk_id=2", "--bos_id=-1", "--character_coverage=0.9995", "--num_threads=1",
              "--normalization_rule_name=nmt_nfkc", "--input_sentence_size=200000",
              "--shuffle_input_sentence=false", "--minloglevel=2"]
    subprocess.run(["spm_train", "--model_prefix=" + os.path.join(SPDIR, "spiece"),
                    "--vocab_size=1000"] + common, check=True)
    subprocess.run(["spm_train", "--model_prefix=" + os.path.join(SPDIR, "spiece_bytes"),
                    "--vocab_size=400", "--byte_fallback=true"] + common, check=True)
    for fn in ("corpus.txt", "spiece.vocab", "spiece_bytes.vocab"):
        os.remove(os.path.join(SPDIR, fn))


def tower(t, kind, eps, vocab=None, gemma=False):
    c = {"hidden_size": t["hidden"], "intermediate_size": t["inter"],
         "num_hidden_layers": t["layers"], "num_attention_heads": t["heads"],
         "hidden_act": t["act"], "layer_norm_eps": eps, "attention_dropout": 0.0,
         "model_type": "siglip_%s_model" % kind}
    if kind == "text" and gemma:
        c.update(vocab_size=vocab, max_position_embeddings=t["pos"], pad_token_id=0,
                 bos_token_id=2, eos_token_id=1)
    elif kind == "text":
        c.update(vocab_size=vocab, max_position_embeddings=t["pos"], pad_token_id=1,
                 bos_token_id=49406, eos_token_id=1)
    else:
        c.update(image_size=t["image"], patch_size=t["patch"], num_channels=3)
    return c


def make_config(spec):
    eps = spec.get("eps", 1e-6)
    return {"_name_or_path": "google/siglip-%s" % spec["name"].replace("_", "-"),
            "architectures": ["SiglipModel"], "initializer_factor": 1.0,
            "model_type": "siglip", "torch_dtype": "float32",
            "text_config": tower(spec["text"], "text", eps, spec["vocab"],
                                 spec.get("tok") == "gemma"),
            "vision_config": tower(spec["vision"], "vision", eps)}


def make_preprocessor(spec):
    s = spec["vision"]["image"]
    return {"do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor", "resample": 3,
            "rescale_factor": 1 / 255, "size": {"height": s, "width": s}}


def make_weights(spec, rng):
    w = {}

    def rnd(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def lin(name, n_out, n_in):
        w[name + ".weight"] = rnd(n_out, n_in, scale=1.0 / np.sqrt(n_in))
        w[name + ".bias"] = rnd(n_out, scale=0.05)

    def ln(name, c):
        w[name + ".weight"] = 1.0 + rnd(c, scale=0.1)
        w[name + ".bias"] = rnd(c, scale=0.1)

    def layers(prefix, t):
        C, F = t["hidden"], t["inter"]
        for i in range(t["layers"]):
            p = "%s.encoder.layers.%d" % (prefix, i)
            for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
                lin(p + ".self_attn." + n, C, C)
            ln(p + ".layer_norm1", C)
            lin(p + ".mlp.fc1", F, C)
            lin(p + ".mlp.fc2", C, F)
            ln(p + ".layer_norm2", C)

    t, v = spec["text"], spec["vision"]
    C = t["hidden"]
    w["text_model.embeddings.token_embedding.weight"] = rnd(spec["vocab"], C, scale=0.5)
    w["text_model.embeddings.position_embedding.weight"] = rnd(t["pos"], C, scale=0.2)
    layers("text_model", t)
    ln("text_model.final_layer_norm", C)
    lin("text_model.head", v["hidden"], C)  # projection_size = vision hidden
    Cv, p = v["hidden"], v["patch"]
    G = v["image"] // p
    w["vision_model.embeddings.patch_embedding.weight"] = rnd(Cv, 3, p, p,
                                                              scale=1.0 / np.sqrt(3 * p * p))
    w["vision_model.embeddings.patch_embedding.bias"] = rnd(Cv, scale=0.05)
    w["vision_model.embeddings.position_embedding.weight"] = rnd(G * G, Cv, scale=0.2)
    layers("vision_model", v)
    ln("vision_model.post_layernorm", Cv)
    w["vision_model.head.probe"] = rnd(1, 1, Cv, scale=1.0)
    w["vision_model.head.attention.in_proj_weight"] = rnd(3 * Cv, Cv, scale=1.0 / np.sqrt(Cv))
    w["vision_model.head.attention.in_proj_bias"] = rnd(3 * Cv, scale=0.05)
    lin("vision_model.head.attention.out_proj", Cv, Cv)
    ln("vision_model.head.layernorm", Cv)
    lin("vision_model.head.mlp.fc1", v["inter"], Cv)
    lin("vision_model.head.mlp.fc2", Cv, v["inter"])
    w["logit_scale"] = np.array([np.log(10.0)], np.float32)
    w["logit_bias"] = np.array([-10.0], np.float32)
    return w


def write_model(spec):
    d = os.path.join(OUT, spec["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    rng = np.random.default_rng(spec["seed"])
    for fn, obj in (("config.json", make_config(spec)),
                    ("preprocessor_config.json", make_preprocessor(spec))):
        with open(os.path.join(d, fn), "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    w = make_weights(spec, rng)
    names = list(w)
    if spec.get("shuffle"):
        rng.shuffle(names)
    write_safetensors(os.path.join(d, "model.safetensors"), w, spec["dtype"], names)
    if spec.get("tok") == "gemma":
        for fn in GEMMA_FILES:
            os.symlink(os.path.join("..", "gemma_tok", fn), os.path.join(d, fn))
    elif spec.get("tok"):
        os.symlink(os.path.join("..", "spiece", spec["tok"]), os.path.join(d, "spiece.model"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": True, "model_max_length": 64, "eos_token": "</s>",
                       "pad_token": "</s>", "unk_token": "<unk>",
                       "tokenizer_class": "SiglipTokenizer"}, f, indent=2)
            f.write("\n")
    s = spec["vision"]["image"]
    px = rng.standard_normal((3, 3, s, s)).astype("<f4")
    px.tofile(os.path.join(d, "pixels.f32"))


def main():
    if "--retrain" in sys.argv or not os.path.exists(os.path.join(SPDIR, "spiece.model")):
        train_spiece()
    for spec in MODELS:
        if spec["vocab"] == "gemma":  # run tools/gen_gemma_tok.py first
            spec = dict(spec, vocab=gemma_vocab_size())
        write_model(spec)
        print("wrote", os.path.join(OUT, spec["name"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
